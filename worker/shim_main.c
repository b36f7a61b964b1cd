/* shim_main.c: shoal-exec-shim, the keeper of one --exec command (shim.h) as a program of its
 * own. It links nothing but libc, so it starts in a fraction of the time shoal-worker itself
 * takes (which links libuv, OpenSSL, ...); shoal-worker uses it when it is installed beside
 * it, and runs itself as the shim otherwise. */
#include "shim.h"

int main(int argc, char **argv)
{
	return shim_main(argc, argv);
}
