/*
 * noop-milter: the floor for `make bench`. A C libmilter (Sendmail's, as
 * Debian's libmilter-dev ships it) that registers the callbacks a routing
 * milter needs (connect, HELO, MAIL, RCPT, header, end of headers, end of
 * message) and answers SMFIS_CONTINUE / accept to every one, doing nothing
 * else. splitrelay routing every message is compared with it in the same
 * interleaved run (issue 10: at least its msg/s, at most its CPU).
 *
 * Usage: noop-milter unix:/path/to.sock
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <libmilter/mfapi.h>

static sfsistat nop_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr) { return SMFIS_CONTINUE; }
static sfsistat nop_helo(SMFICTX *ctx, char *helo) { return SMFIS_CONTINUE; }
static sfsistat nop_envfrom(SMFICTX *ctx, char **argv) { return SMFIS_CONTINUE; }
static sfsistat nop_envrcpt(SMFICTX *ctx, char **argv) { return SMFIS_CONTINUE; }
static sfsistat nop_header(SMFICTX *ctx, char *name, char *value) { return SMFIS_CONTINUE; }
static sfsistat nop_eoh(SMFICTX *ctx) { return SMFIS_CONTINUE; }
static sfsistat nop_eom(SMFICTX *ctx) { return SMFIS_CONTINUE; }

static struct smfiDesc desc = {
	"noop-milter", SMFI_VERSION, 0,
	nop_connect, nop_helo, nop_envfrom, nop_envrcpt, nop_header, nop_eoh,
	NULL /* body */, nop_eom, NULL /* abort */, NULL /* close */,
	NULL /* unknown */, NULL /* data */, NULL /* negotiate */
};

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: %s unix:/path/to.sock\n", argv[0]);
		return 2;
	}
	umask(0); /* Postfix's smtpd (user postfix) must reach the socket */
	if (smfi_setconn(argv[1]) == MI_FAILURE || smfi_register(desc) == MI_FAILURE) {
		fprintf(stderr, "noop-milter: cannot set up %s\n", argv[1]);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
