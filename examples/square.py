# The seed's parallel map, as a shoal streaming task: each partition's integers arrive on
# stdin, one per line; their squares go to stdout in the same order.
import sys

def square(x):
    return x * x

for line in sys.stdin:
    print(square(int(line)))
