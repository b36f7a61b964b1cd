/* list.h: intrusive circular doubly linked list. O(1) insert and unlink; a node knows
 * whether it is linked, so unlinking twice is harmless. */
#ifndef SHOAL_LIST_H
#define SHOAL_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};
struct list_head {
	struct list_node n;
};

#define list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct list_head *h)
{
	h->n.prev = h->n.next = &h->n;
}
static inline void list_node_init(struct list_node *n)
{
	n->prev = n->next = NULL;
}
static inline bool list_empty(const struct list_head *h)
{
	return h->n.next == &h->n;
}
static inline bool list_linked(const struct list_node *n)
{
	return n->next != NULL;
}
static inline void list__insert(struct list_node *n, struct list_node *prev, struct list_node *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}
static inline void list_push_back(struct list_head *h, struct list_node *n)
{
	list__insert(n, h->n.prev, &h->n);
}
static inline void list_push_front(struct list_head *h, struct list_node *n)
{
	list__insert(n, &h->n, h->n.next);
}
static inline void list_unlink(struct list_node *n)
{
	if (!n->next)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}
/* First node or NULL. */
static inline struct list_node *list_first(const struct list_head *h)
{
	return list_empty(h) ? NULL : h->n.next;
}
/* Node after n or NULL at the end. */
static inline struct list_node *list_next(const struct list_head *h, const struct list_node *n)
{
	return n->next == &h->n ? NULL : n->next;
}

#endif
