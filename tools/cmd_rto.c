/* cmd_rto.c - placeholder until the subcommand lands. */
#include "tool.h"

int cmd_rto(int argc, char **argv)
{
	(void)argc; (void)argv;
	tool_error("rto: not implemented yet");
	return VBFS_EXIT_USAGE;
}
