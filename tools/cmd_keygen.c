/* cmd_keygen.c - placeholder until the subcommand lands. */
#include "tool.h"

int cmd_keygen(int argc, char **argv)
{
	(void)argc; (void)argv;
	tool_error("keygen: not implemented yet");
	return VBFS_EXIT_USAGE;
}
