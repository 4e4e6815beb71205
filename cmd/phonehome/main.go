// Command phonehome is a network egress monitor: it replays captures or
// watches interfaces, dissects DNS, TLS, QUIC and HTTP, attributes flows to
// vendors from a signature set, flags exfiltration-like traffic, and writes
// one ECS JSON event per line.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `phonehome: network egress monitor

Usage:
  phonehome replay [flags] FILE...   replay pcap/pcapng captures (gzip ok, - for stdin)
  phonehome run -i IFACE [flags]     the span-port sensor: live capture to SIEM outputs
  phonehome signatures list|check    print or validate vendor signatures
  phonehome config check FILE        validate a sensor configuration file
  phonehome version                  print the version

Run 'phonehome COMMAND -h' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the process exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "replay":
		return cmdReplay(args[1:], stdin, stdout, stderr)
	case "run":
		return cmdRun(args[1:], stderr)
	case "config":
		return cmdConfig(args[1:], stdout, stderr)
	case "signatures":
		return cmdSignatures(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "phonehome %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "phonehome: unknown command %q\n\n%s", args[0], usage)
	return 2
}
