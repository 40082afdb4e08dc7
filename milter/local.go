package milter

// localSubmission reports whether a milter connection carries mail
// submitted on the MTA host itself rather than by an SMTP client. Postfix
// hands such mail (sendmail(1) and postdrop via pickup(8), and its own
// notices with internal_mail_filter_classes) to non_smtpd_milters with a
// made-up connection: client "localhost", address 127.0.0.1 and port 0
// (measured, Postfix 3.7). A real SMTP client always has a source port.
func localSubmission(host, addr string, port uint16) bool {
	return port == 0 && host == "localhost" && (addr == "127.0.0.1" || addr == "::1")
}
