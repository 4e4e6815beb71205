// Command phonehome-synth writes the project's generated captures: the
// bundled sample (testdata/sample.pcap) and the benchmark capture.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/phonehome/phonehome/synth"
)

func main() {
	scenario := flag.String("scenario", "sample", "what to generate: sample or bench")
	out := flag.String("o", "", "output `FILE` (required)")
	size := flag.Int64("size", 1<<30, "approximate size in bytes of the bench capture")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "phonehome-synth: -o FILE is required")
		os.Exit(2)
	}
	if err := write(*scenario, *out, *size); err != nil {
		fmt.Fprintf(os.Stderr, "phonehome-synth: %v\n", err)
		os.Exit(1)
	}
}

func write(scenario, path string, size int64) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	switch scenario {
	case "sample":
		err = synth.Sample(f)
	case "bench":
		err = synth.Bench(f, size)
	default:
		err = fmt.Errorf("unknown scenario %q", scenario)
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
