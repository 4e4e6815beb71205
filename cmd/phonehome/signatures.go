package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/phonehome/phonehome/signatures"
)

const signaturesUsage = `Usage:
  phonehome signatures list [--signatures DIR]... [--no-default-signatures]
      print the loaded signature set (embedded defaults, then each DIR layered in order)
  phonehome signatures check FILE|DIR...
      validate signature files; errors are printed as file:line:col: message
`

func cmdSignatures(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, signaturesUsage)
		return 2
	}
	switch args[0] {
	case "list":
		fs := flag.NewFlagSet("signatures list", flag.ContinueOnError)
		fs.SetOutput(stderr)
		var dirs dirList
		fs.Var(&dirs, "signatures", "layer the signature files in `DIR` over the defaults (repeatable)")
		noDefaults := fs.Bool("no-default-signatures", false, "do not load the embedded defaults")
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "phonehome signatures list: unexpected argument %q\n", fs.Arg(0))
			return 2
		}
		set, err := signatures.Load(!*noDefaults, dirs...)
		if err != nil {
			fmt.Fprintf(stderr, "phonehome signatures list: %v\n", err)
			return 1
		}
		if err := signatures.List(stdout, set); err != nil {
			fmt.Fprintf(stderr, "phonehome signatures list: %v\n", err)
			return 1
		}
		return 0
	case "check":
		if len(args) < 2 {
			fmt.Fprintln(stderr, "phonehome signatures check: no files given")
			return 2
		}
		if err := signatures.Check(stdout, args[1:]...); err != nil {
			if !errors.Is(err, signatures.ErrCheckFailed) {
				fmt.Fprintf(stderr, "phonehome signatures check: %v\n", err)
			}
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, signaturesUsage)
		return 0
	}
	fmt.Fprintf(stderr, "phonehome signatures: unknown subcommand %q\n\n%s", args[0], signaturesUsage)
	return 2
}
