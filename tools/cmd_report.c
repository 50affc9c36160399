/* cmd_report.c - placeholder until the subcommand lands. */
#include "tool.h"

int cmd_report(int argc, char **argv)
{
	(void)argc; (void)argv;
	tool_error("report: not implemented yet");
	return VBFS_EXIT_USAGE;
}
