// Command chainee is the EFI program bootd chain-loads in the end-to-end
// tests: it prints a marker and the load options it was started with, and
// exits with the status a word "exit=N" among them names (0 without one),
// so a test sees both a child that succeeds and one that fails return to
// the loader.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Marker starts every line the chainee prints.
const Marker = "ociboot-chainee:"

func main() {
	fmt.Printf("%s running, load options %q\n", Marker, strings.Join(os.Args[1:], " "))
	status := 0
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "exit="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				fmt.Printf("%s bad exit word %q: %v\n", Marker, a, err)
				os.Exit(2)
			}
			status = n
		}
	}
	fmt.Printf("%s returning status %d\n", Marker, status)
	os.Exit(status)
}
