package limits

// Log keys of the relay limit store (an API, like milter's: add keys,
// never rename one). "err" is milter.KeyErr.
const (
	KeyStateFile        = "state_file" // the bbolt file
	KeyStateDir         = "state_dir"
	KeyMovedTo          = "moved_to"   // where a damaged file was moved
	KeySizeBytes        = "size_bytes" // of the damaged file
	KeyLost             = "lost"       // users whose damaged records were dropped
	KeyUsers            = "users"
	KeyRedis            = "redis" // the server's address
	KeyOp               = "op"
	KeyRedisUnavailable = "redis_unavailable"
	KeyTransactions     = "transactions"
	KeyMessages         = "messages"       // pushed to Redis after an outage
	KeyRecipients       = "recipients"     // unique recipients pushed, not counted there yet
	KeyOrgRecipients    = "org_recipients" // organisation recipients pushed
	KeyAlreadyPushed    = "already_pushed" // transactions Redis had from an earlier push
	KeyLeft             = "left"           // transactions still to push
	keyErr              = "err"
	keyRenameErr        = "rename_err"
)
