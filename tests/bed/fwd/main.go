// Command fwd joins its standard input and output to a TCP connection. The
// user-network bed runs it from QEMU's guestfwd=...-cmd: once per guest
// connection, so each guest connection gets its own connection to a server
// on the host's loopback.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fwd host:port")
		os.Exit(2)
	}
	c, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fwd:", err)
		os.Exit(1)
	}
	tc := c.(*net.TCPConn)
	done := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, tc)
		os.Stdout.Close() // the guest sees the server's FIN
		close(done)
	}()
	io.Copy(tc, os.Stdin)
	tc.CloseWrite() // the server sees the guest's FIN
	<-done
}
