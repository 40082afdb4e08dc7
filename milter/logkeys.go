package milter

// Log keys are an API: fail2ban filters and Loki queries are written
// against them. Add keys; never rename one.
const (
	KeyConnID      = "conn_id"
	KeyClientAddr  = "client_addr"
	KeyClientName  = "client_name"
	KeyQueueID     = "queue_id"
	KeyMailFrom    = "mail_from"
	KeyRcpt        = "rcpt"        // the recipient as the client gave it
	KeyRoutedRcpt  = "routed_rcpt" // its routing-namespace form
	KeyRule        = "rule"
	KeyRoute       = "route"
	KeyAction      = "action" // accept | route | copy | reject | tempfail
	KeyReason      = "reason"
	KeyKind        = "kind" // inbound | internal
	KeyAccount     = "account"
	KeyReply       = "reply"
	KeyDryRun      = "dry_run"
	KeyRcpts       = "rcpts"
	KeyRouted      = "routed"
	KeyCopies      = "copies"
	KeyErr         = "err"
	KeyStack       = "stack"
	KeyDuration    = "duration_seconds"
	KeyAuth        = "auth"          // SASL login name
	KeyRelay       = "relay"         // recipient or message judged by the relay policy
	KeyNewMailFrom = "new_mail_from" // rewritten envelope sender
	KeyHost        = "host"          // the route's host chosen for the message, host:port
	KeyStoredRcpt  = "stored_rcpt"   // the recipient as the MTA stores it ({rcpt_addr})
	KeySize        = "size_bytes"    // message size
	KeyStage       = "stage"         // milter stage of an internal error: rcpt | end of message
	KeyConfigID    = "config_id"     // short hash of the rules in force
	KeyHelo        = "helo"          // the client's HELO/EHLO name

	// The daemon's own lines (cmd/splitrelay): start, reload, shutdown.
	KeyVersion          = "version"
	KeyListen           = "listen"
	KeyNewListen        = "new_listen"
	KeyMetricsListen    = "metrics_listen"
	KeyNewMetricsListen = "new_metrics_listen"
	KeyConfig           = "config" // the configuration file
	KeyOldConfigID      = "old_config_id"
	KeyRoutes           = "routes"
	KeyRules            = "rules"
	KeySignal           = "signal"
	KeyWatchdog         = "watchdog_seconds"
	KeyDrainTimeout     = "drain_timeout_seconds"
	KeyUID              = "uid"

	// The directory sync (milter/ldapsync).
	KeyLDAPURL        = "ldap_url"
	KeyFile           = "file"      // the snapshot file
	KeySyncedAt       = "synced_at" // when the data in use was read, RFC 3339
	KeyUsers          = "users"
	KeyGroups         = "groups"
	KeyAliases        = "aliases"
	KeySnapshotURL    = "snapshot_url"
	KeySnapshotBaseDN = "snapshot_base_dn"
)
