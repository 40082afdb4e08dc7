package wire

// Macro stages, in the order of a transaction. The MTA sends a stage's
// macros (a D packet naming the command) just before the command; they
// stay visible until the same stage's macros come again or the stage is
// cleared (Clear). StageCmd holds the macros of header, body, unknown and
// abort commands, which last for that one command.
const (
	StageConnect = iota
	StageHelo
	StageMail
	StageRcpt
	StageData
	StageEOH
	StageEOM
	StageCmd
	nStages
)

// Negotiation stage numbers (SMFIM_*), used to ask the MTA for macros.
const (
	SymConnect = 0
	SymHelo    = 1
	SymMail    = 2
	SymRcpt    = 3
	SymData    = 4
	SymEOM     = 5
	SymEOH     = 6
)

// MacroStage is the stage whose macros a D packet for command cmd carries,
// and false for a command that has none.
func MacroStage(cmd byte) (int, bool) {
	switch cmd {
	case CmdConnect:
		return StageConnect, true
	case CmdHelo:
		return StageHelo, true
	case CmdMail:
		return StageMail, true
	case CmdRcpt:
		return StageRcpt, true
	case CmdData:
		return StageData, true
	case CmdEOH:
		return StageEOH, true
	case CmdEOB:
		return StageEOM, true
	case CmdHeader, CmdBody, CmdUnknown, CmdAbort:
		return StageCmd, true
	}
	return 0, false
}

// Macros keeps each stage's macros as the MTA sent them (name\0value\0...),
// in buffers reused from one transaction to the next: storing a stage
// copies bytes and allocates nothing once the buffers have grown.
type Macros struct {
	stage [nStages][]byte
}

// Set replaces stage's macros with data, the body of a D packet after its
// command byte. Every later stage is cleared: the MTA is at this stage now.
func (m *Macros) Set(stage int, data []byte) {
	m.Clear(stage)
	m.stage[stage] = append(m.stage[stage][:0], data...)
}

// Clear forgets the macros of stage and of every stage after it.
func (m *Macros) Clear(stage int) {
	for i := stage; i < nStages; i++ {
		m.stage[i] = m.stage[i][:0]
	}
}

// Lookup returns the value of macro name from the latest stage that has
// it. As in libmilter, a one-letter name matches itself in braces and the
// other way round: "i" finds "{i}" and "{i}" finds "i". The value is a
// slice of the store, valid until the stage is set or cleared.
func (m *Macros) Lookup(name string) ([]byte, bool) {
	for i := nStages - 1; i >= 0; i-- {
		b := m.stage[i]
		for len(b) > 0 {
			k, rest, ok := CString(b)
			if !ok {
				break
			}
			v, rest, ok := CString(rest)
			if !ok {
				v, rest = rest, nil // a last name without a NUL-terminated value: empty value
			}
			if nameIs(k, name) {
				return v, true
			}
			b = rest
		}
	}
	return nil, false
}

// Get is Lookup as a string, "" when the macro is not set.
func (m *Macros) Get(name string) string {
	v, _ := m.Lookup(name)
	return string(v)
}

// nameIs compares a macro name as sent with one asked for.
func nameIs(sent []byte, want string) bool {
	if string(sent) == want {
		return true
	}
	switch {
	case len(sent) == 3 && sent[0] == '{' && sent[2] == '}':
		return len(want) == 1 && want[0] == sent[1]
	case len(want) == 3 && want[0] == '{' && want[2] == '}':
		return len(sent) == 1 && sent[0] == want[1]
	}
	return false
}
