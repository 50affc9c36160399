/*
 * cmd_keygen.c - `vbfsctl keygen SECRET_KEY PUBLIC_KEY`: an Ed25519 key
 * pair (PEM) for signing indexes on the backup host.
 */
#include <string.h>
#include "tool.h"

static const char usage_text[] =
	"usage: vbfsctl keygen SECRET_KEY PUBLIC_KEY\n"
	"\n"
	"Make an Ed25519 key pair (PEM).  The secret key is written mode 0600;\n"
	"keep it on the backup host and sign with 'vbfsctl build --sign-key'.\n"
	"Give the public key to the hosts that verify ('vbfsctl verify\n"
	"--verify-key', 'vbfs -o verify_key=').  Existing files are never\n"
	"overwritten.\n";

int cmd_keygen(int argc, char **argv)
{
	char why[VBFS_WHY_LEN];
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, stdout);
		return VBFS_EXIT_OK;
	}
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-')
		tool_usage_error("keygen", "needs SECRET_KEY and PUBLIC_KEY");
	if (vbfs_keygen(argv[1], argv[2], why))
		tool_die("keygen: %s", why);
	fprintf(stderr, "wrote secret key %s (0600) and public key %s\n", argv[1], argv[2]);
	return VBFS_EXIT_OK;
}
