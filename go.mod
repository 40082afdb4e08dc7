module github.com/splitrelay/splitrelay

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/emersion/go-message v0.18.2
	golang.org/x/net v0.62.0
)

require (
	github.com/d--j/go-milter v0.10.2 // indirect
	github.com/lmittmann/tint v1.2.1 // indirect
	golang.org/x/text v0.43.0 // indirect
)
