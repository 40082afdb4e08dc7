package sendmailtest

import (
	"path/filepath"

	"github.com/splitrelay/splitrelay/milter/postfixtest"
)

// writeServerCert writes a fresh self-signed certificate and key for name
// into dir (cert.pem, key.pem), for Sendmail's STARTTLS.
func writeServerCert(dir, name string) error {
	return postfixtest.WriteCert(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), name)
}
