// Package wire is the milter protocol (version 6, as Postfix and Sendmail
// speak it) on the filter's side of the socket: the MTA's packets in, our
// replies out, and the macros the MTA sends with them.
//
// It exists for speed. go-milter's server, which splitrelay used before,
// allocates a message and a buffer for every packet, a map per macro stage
// and a modifier per callback: about 60 allocations per message, twice
// what the whole transaction may cost (issue 10). Here a connection owns
// one read buffer, one write buffer and one macro store, all reused: a
// packet's data is a slice of the read buffer, valid until the next packet,
// and a reply is appended to the write buffer and sent with the
// modifications before it in one write(2). go-milter stays the client of
// our tests and of the watchdog probe, a second implementation that checks
// this one.
//
// The protocol: every packet is a 4-byte big-endian length, a command (or
// reply) byte, and length-1 bytes of data; strings are NUL-terminated.
package wire

// Commands the MTA sends (libmilter's SMFIC_*).
const (
	CmdAbort   = 'A' // end of the transaction, without end of message
	CmdBody    = 'B' // a body chunk
	CmdConnect = 'C' // host\0 family [port(2) address\0]
	CmdMacro   = 'D' // command name\0value\0...
	CmdEOB     = 'E' // end of message (may carry a last body chunk)
	CmdHelo    = 'H' // name\0
	CmdQuitNC  = 'K' // quit, the connection is reused for a new client
	CmdHeader  = 'L' // name\0value\0
	CmdMail    = 'M' // sender\0 [arg\0]...
	CmdEOH     = 'N' // end of headers
	CmdOptNeg  = 'O' // version(4) actions(4) protocol(4)
	CmdQuit    = 'Q'
	CmdRcpt    = 'R' // recipient\0 [arg\0]...
	CmdData    = 'T'
	CmdUnknown = 'U' // an SMTP command the MTA does not know
)

// Replies we send (SMFIR_*). The modifications (add or delete a recipient,
// change the sender, replace the body) are only valid at end of message,
// before its final reply.
const (
	RespAddRcpt    = '+' // recipient\0
	RespDelRcpt    = '-' // recipient\0
	RespAddRcptPar = '2' // recipient\0 args\0
	RespAccept     = 'a'
	RespReplBody   = 'b' // a chunk of the new body
	RespContinue   = 'c'
	RespDiscard    = 'd'
	RespChgFrom    = 'e' // sender\0 [args\0]
	RespReject     = 'r'
	RespTempFail   = 't'
	RespReplyCode  = 'y' // "550 5.7.0 text\0"
)

// Action flags (SMFIF_*): the modifications a filter may make, offered by
// the MTA and chosen by the filter at negotiation.
const (
	ActAddHeaders = 1 << 0
	ActChangeBody = 1 << 1
	ActAddRcpt    = 1 << 2
	ActDelRcpt    = 1 << 3
	ActChgHeaders = 1 << 4
	ActQuarantine = 1 << 5
	ActChangeFrom = 1 << 6
	ActAddRcptPar = 1 << 7
	ActSetSymList = 1 << 8 // the filter may say which macros it wants
)

// Protocol flags (SMFIP_*): what the MTA leaves out, and which commands
// get no reply (NR).
const (
	ProtoNoConnect  = 1 << 0
	ProtoNoHelo     = 1 << 1
	ProtoNoMail     = 1 << 2
	ProtoNoRcpt     = 1 << 3
	ProtoNoBody     = 1 << 4
	ProtoNoHeaders  = 1 << 5
	ProtoNoEOH      = 1 << 6
	ProtoNRHeader   = 1 << 7
	ProtoNoUnknown  = 1 << 8
	ProtoNoData     = 1 << 9
	ProtoSkip       = 1 << 10
	ProtoRcptRej    = 1 << 11
	ProtoNRConn     = 1 << 12
	ProtoNRHelo     = 1 << 13
	ProtoNRMail     = 1 << 14
	ProtoNRRcpt     = 1 << 15
	ProtoNRData     = 1 << 16
	ProtoNRUnknown  = 1 << 17
	ProtoNREOH      = 1 << 18
	ProtoNRBody     = 1 << 19
	ProtoHdrLeadSpc = 1 << 20
	// The largest packet the MTA may send: 256 KB or 1 MB instead of
	// 64 KB. Bits 28-30 are between the MTA and libmilter; a filter
	// answers with the one it accepts.
	ProtoMDS256K  = 1 << 28
	ProtoMDS1M    = 1 << 29
	ProtoInternal = 7 << 28
)

// Data sizes: the largest packet data (and body chunk) for each of the
// negotiated sizes.
const (
	DataSize64K  = 64<<10 - 1
	DataSize256K = 256<<10 - 1
	DataSize1M   = 1<<20 - 1
)

// IsModification reports whether a reply code is a modification (add or
// delete a recipient, change the sender, replace the body): only sent at
// end of message, always before its final reply.
func IsModification(code byte) bool {
	switch code {
	case RespAddRcpt, RespDelRcpt, RespAddRcptPar, RespChgFrom, RespReplBody:
		return true
	}
	return false
}

// NoReply reports whether cmd gets no reply under the negotiated protocol
// flags proto.
func NoReply(cmd byte, proto uint32) bool {
	var flag uint32
	switch cmd {
	case CmdConnect:
		flag = ProtoNRConn
	case CmdHelo:
		flag = ProtoNRHelo
	case CmdMail:
		flag = ProtoNRMail
	case CmdRcpt:
		flag = ProtoNRRcpt
	case CmdData:
		flag = ProtoNRData
	case CmdUnknown:
		flag = ProtoNRUnknown
	case CmdEOH:
		flag = ProtoNREOH
	case CmdHeader:
		flag = ProtoNRHeader
	case CmdBody:
		flag = ProtoNRBody
	case CmdMacro, CmdAbort, CmdQuit, CmdQuitNC:
		return true // never answered
	default:
		return false
	}
	return proto&flag != 0
}

// CString cuts the NUL-terminated string at the start of b: s is the
// string without its NUL, rest what follows it. ok is false when b has no
// NUL.
func CString(b []byte) (s, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return nil, nil, false
}
