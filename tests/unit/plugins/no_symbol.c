/* no_symbol.c: a shared object that does not export shoal_plugin_v1 (here: a misspelt
 * entry point), which plugin_load must refuse by name. */
int shoal_plugin_v0(void);

int shoal_plugin_v0(void)
{
	return 1;
}
