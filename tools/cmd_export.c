/* cmd_export.c - placeholder until the subcommand lands. */
#include "tool.h"

int cmd_export(int argc, char **argv)
{
	(void)argc; (void)argv;
	tool_error("export: not implemented yet");
	return VBFS_EXIT_USAGE;
}
