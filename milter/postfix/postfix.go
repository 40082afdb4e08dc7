package postfix

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/net/idna"

	"github.com/splitrelay/splitrelay/rules"
)

// Defaults for Options.
const (
	DefaultMapDir   = "/etc/postfix/splitrelay" // where the map files live
	DefaultQueueDir = "/var/spool/postfix"      // Postfix's queue_directory
)

// Names of the generated map files inside the map directory.
const (
	TransportMap       = "transport"        // transport_maps (transport(5))
	GenericMap         = "generic"          // smtp_generic_maps (generic(5))
	RecipientAccessMap = "recipient_access" // check_recipient_access (access(5))
)

// ServicePrefix starts the name of every master.cf transport we generate:
// route "legacy" is delivered by transport "splitrelay-legacy".
const ServicePrefix = "splitrelay-"

// NamespaceReply is what check_recipient_access answers a client that names
// an address in the routing namespace (access(5): "5NN text").
var NamespaceReply = rules.Reply{Code: 550, Enhanced: "5.1.2", Text: "Bad destination system address"}

// Options says where things are on the Postfix host.
type Options struct {
	// MapDir is the absolute directory of the map files; default DefaultMapDir.
	MapDir string
	// QueueDir is Postfix's queue_directory; default DefaultQueueDir. A
	// milter socket inside it is named relative to it, so that a chrooted
	// smtpd(8) reaches it.
	QueueDir string
	// ConfigDir, when not empty, is passed to postconf as "-c ConfigDir"
	// in the postconf script.
	ConfigDir string
}

// Config is the Postfix side of a ruleset.
type Config struct {
	Source    string // the ruleset's file name, for "generated from" comments
	ConfigDir string // Options.ConfigDir
	MapDir    string
	// Scratch makes the scripts fit for a copy of the configuration
	// (--format diff): no check that the map files exist, no removal of
	// them, and the record at RecordPath.
	Scratch    bool
	RecordPath string // default MapDir/attached (RecordFile)
	Main       []Setting
	Master     []Service
	Maps       []MapFile
	Notes      []string // warnings for the administrator, one paragraph each, printed as comments
	// Probes are addresses in the routing namespace (one per domain and
	// route) that the postconf script looks up in virtual_alias_maps and
	// recipient_canonical_maps: an entry matching one would capture
	// routed mail.
	Probes []string
	// MilterKey is how smtpd_milters names our milter ("unix:splitrelay/milter.sock").
	MilterKey string
}

// Merge says how a main.cf setting combines with the value already there.
type Merge int

const (
	Replace Merge = iota // name = value
	Prepend              // our element goes first in the existing list
	Append               // our element goes last in the existing list
)

// Setting is one main.cf parameter.
type Setting struct {
	Name  string
	Value string // Replace: the value; Prepend/Append: our list element
	Merge Merge
	// Key identifies our element in an existing list (Prepend/Append): when
	// a list already holds Key, the setting is already applied.
	Key string
	// When, for a list element, is a word the site's list must already
	// hold for our element to be added ("" = always): the U-label form of
	// an IDN domain goes into relay_domains only where its A-label is.
	When    string
	Comment string
}

// Service is one master.cf entry (master(5)).
type Service struct {
	Name, Type                               string // "splitrelay-legacy", "unix"
	Private, Unpriv, Chroot, Wakeup, Maxproc string // "-" for the default
	Command                                  string // "smtp"
	Params                                   []Param
	Comments                                 []string // why the params are what they are
}

// Param is one "-o name=value" of a service.
type Param struct{ Name, Value string }

// MapFile is one generated lookup table.
type MapFile struct {
	Name    string // file name inside MapDir
	Path    string // MapDir/Name
	Content string
}

// Ref is how main.cf or master.cf refers to the map: "regexp:/path".
func (m MapFile) Ref() string { return "regexp:" + m.Path }

// Line is the service's first master.cf line, fields separated by one space.
func (s Service) Line() string {
	return strings.Join([]string{s.Name, s.Type, s.Private, s.Unpriv, s.Chroot, s.Wakeup, s.Maxproc, s.Command}, " ")
}

// unsafeInMainCF reports a character that a path cannot hold in a main.cf
// list value (transport_maps, smtpd_milters…): Postfix splits lists on
// whitespace and commas, expands $name and groups with { }, so the map
// reference would be cut in two or changed, and the script's merge would
// add it again at every run.
func unsafeInMainCF(r rune) bool {
	return r <= ' ' || r == 0x7f || strings.ContainsRune(",${}", r)
}

// Generate returns the Postfix configuration for rs.
func Generate(rs *rules.Ruleset, opt Options) (*Config, error) {
	if opt.MapDir == "" {
		opt.MapDir = DefaultMapDir
	}
	if opt.QueueDir == "" {
		opt.QueueDir = DefaultQueueDir
	}
	if !path.IsAbs(opt.MapDir) {
		return nil, fmt.Errorf("postfix: map directory %q is not an absolute path", opt.MapDir)
	}
	if !path.IsAbs(opt.QueueDir) {
		return nil, fmt.Errorf("postfix: queue directory %q is not an absolute path", opt.QueueDir)
	}
	for _, d := range []struct{ what, dir string }{{"map directory", opt.MapDir}, {"queue directory", opt.QueueDir}} {
		if i := strings.IndexFunc(d.dir, unsafeInMainCF); i >= 0 {
			return nil, fmt.Errorf("postfix: %s %q contains %q: main.cf would read it as a list separator, a $parameter or a { } group; choose a path without it",
				d.what, d.dir, d.dir[i:i+1])
		}
	}
	suffix := strings.ToLower(strings.Trim(rs.Milter.RoutingSuffix, "."))
	if !isDomain(suffix) {
		return nil, fmt.Errorf("postfix: milter.routing_suffix %q is not a domain name", rs.Milter.RoutingSuffix)
	}
	milter, notes, err := milterAddress(rs.Milter.Listen, opt.QueueDir)
	if err != nil {
		return nil, err
	}
	c := &Config{Source: rs.Name, ConfigDir: opt.ConfigDir, MapDir: path.Clean(opt.MapDir), Notes: notes}
	routes, err := checkedRoutes(rs)
	if err != nil {
		return nil, err
	}
	rows, relayNotes := relayRows(rs)
	maps, err := buildMaps(c, routes, suffix, rows)
	if err != nil {
		return nil, err
	}
	c.Maps = maps
	for _, r := range routes {
		svc, err := service(r, c.mapRef(GenericMap))
		if err != nil {
			return nil, err
		}
		c.Master = append(c.Master, svc)
	}
	milterEntry := "{ " + milter + ", default_action=tempfail, protocol=6 }"
	c.MilterKey = milter
	for _, r := range routes {
		for _, d := range rs.Domains {
			c.Probes = append(c.Probes, "splitrelay-probe@"+d+"."+r.Name+"."+suffix)
		}
	}
	access := "check_recipient_access " + c.mapRef(RecipientAccessMap)
	c.Main = []Setting{
		{
			Name:    "smtpd_milters",
			Value:   milterEntry,
			Merge:   Append,
			Key:     milter,
			Comment: "our milter, after any you already have; tempfail, never accept: without the milter, mail would be delivered unrouted",
		},
		{
			Name:    "non_smtpd_milters",
			Value:   milterEntry,
			Merge:   Append,
			Key:     milter,
			Comment: "mail submitted on this host (sendmail(1), postdrop) is routed too",
		},
		{
			Name:    "internal_mail_filter_classes",
			Value:   "bounce",
			Merge:   Append,
			Key:     "bounce",
			Comment: "Postfix's own delivery notices pass non_smtpd_milters too, so that the milter names the original recipient in them, not its routing-namespace form (also your other non_smtpd_milters see them)",
		},
		{
			Name:    "transport_maps",
			Value:   c.mapRef(TransportMap),
			Merge:   Prepend,
			Key:     c.mapRef(TransportMap),
			Comment: "routes the routing namespace to the splitrelay-* transports; first, so that no other map can catch it",
		},
		{
			Name:    "smtpd_relay_restrictions",
			Value:   access,
			Merge:   Prepend,
			Key:     c.mapRef(RecipientAccessMap),
			Comment: "first: clients may never address the routing namespace (even with the milter off or in dry_run); with [relay], relay recipients are left to the milter (Google's replies); recipients in our domains are left to your restrictions",
		},
		{
			Name:    "smtpd_recipient_restrictions",
			Value:   access,
			Merge:   Prepend,
			Key:     c.mapRef(RecipientAccessMap),
			Comment: "the same table first here too, so that a reject_unauth_destination of yours here does not answer relay recipients with other words",
		},
	}
	// Postfix 3.7 matches a U-label recipient domain only against a
	// U-label entry (POSTFIX.md): where relay_domains names one of our
	// IDN domains in A-label form, its U-label form joins it, so that
	// Postfix's "ours" is splitrelay's.
	for _, d := range rs.Domains {
		if u, err := idna.ToUnicode(d); err == nil && u != d {
			c.Main = append(c.Main, Setting{Name: "relay_domains", Value: u, Merge: Append, Key: u, When: d,
				Comment: "the U-label form of " + d + ", only if relay_domains lists " + d + ": Postfix does not match one form against the other"})
		}
	}
	if rs.Relay != nil && rs.Relay.RequireSMTPAuth {
		c.Main = append(c.Main, Setting{Name: "smtpd_tls_auth_only", Value: "yes", Merge: Replace,
			Comment: "relay.require_smtp_auth: SMTP AUTH only over TLS, as the relay policy counts it"})
	}
	c.Notes = append(c.Notes, relayNotes...)
	c.Notes = append(c.Notes,
		"Nothing global that changes the fate of mail to your domains is set: mynetworks, smtpd_recipient_limit, message_size_limit and "+
			"smtpd_data_restrictions stay yours; relay limits are the milter's, for relay recipients only.",
		"WARNING: virtual_alias_maps and recipient_canonical_maps ARE applied to recipients the milter adds: "+
			"no entry in them (a catch-all such as \"@example.com\", a regexp) may match an address ending in ."+suffix+".",
		"Services in master.cf with their own -o smtpd_milters= or -o smtpd_recipient_restrictions= "+
			"(a submission service, for example) do not get these settings: their mail is not routed.",
		"The splitrelay-* transports use only our generic map: an smtp_generic_maps of main.cf does not apply to the mail they deliver.",
	)
	for _, r := range routes {
		if r.Multiple() {
			c.Notes = append(c.Notes, "Routes with several hosts use next-hop lists in the transport map: Postfix 3.5 or later "+
				"(postconf -h mail_version); older versions do not read them.")
			break
		}
	}
	return c, nil
}

// mapRef is the "regexp:/path" of the named map.
func (c *Config) mapRef(name string) string { return "regexp:" + path.Join(c.MapDir, name) }

// checkedRoutes is rs.SortedRoutes, each name checked once more before it
// becomes part of an address and a master.cf service name.
func checkedRoutes(rs *rules.Ruleset) ([]*rules.Route, error) {
	routes := rs.SortedRoutes()
	for _, r := range routes {
		if !rules.ValidLabel(r.Name) {
			return nil, fmt.Errorf("postfix: route %q: name must be a DNS label (letters, digits, hyphens) to be part of an address", r.Name)
		}
	}
	return routes, nil
}
