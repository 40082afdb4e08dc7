package rules

// TEMPORARY stubs so that other packages compile while the engine is written.

// Error is one configuration problem at a position.
type Error struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Path      string // TOML key path, e.g. routes.legacy.port
	Msg       string
}

func (e *Error) Error() string { return "" }

// Errors is every problem found in a configuration, in file order.
type Errors []*Error

func (es Errors) Error() string { return "" }

// Load parses and validates a configuration. name is used in error
// messages; files reads users_files (nil: users_files are an error).
// The error, if any, is an Errors.
func Load(name string, data []byte, files Files) (*Ruleset, error) { panic("todo") }

// Decide returns the decision for every recipient of env.
func (rs *Ruleset) Decide(env Envelope) Decision { panic("todo") }

// CheckRecipient is the RCPT TO time check: it refuses a client-supplied
// recipient in the routing namespace. ok is false with the reply to send.
func (rs *Ruleset) CheckRecipient(addr string) (reply Reply, reason string, ok bool) { panic("todo") }

// RoutedAddress is addr rewritten into route r's routing namespace:
// local@domain.<route>.<suffix>.
func (rs *Ruleset) RoutedAddress(addr string, r *Route) string { panic("todo") }

// Summary is the one-paragraph description `splitrelay check` prints.
func (rs *Ruleset) Summary() string { panic("todo") }
