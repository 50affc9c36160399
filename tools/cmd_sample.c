/* cmd_sample.c - placeholder until the subcommand lands. */
#include "tool.h"

int cmd_sample(int argc, char **argv)
{
	(void)argc; (void)argv;
	tool_error("sample: not implemented yet");
	return VBFS_EXIT_USAGE;
}
