package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"
)

// ResponderPort is where a lab task's identity responder listens.
const ResponderPort = 7777

// responderMain runs `weft lab responder --name NAME`: the default command
// of lab tasks. It answers every TCP connection on ResponderPort with the
// task's name, so that the connectivity matrix knows who answered even
// where networks reuse addresses.
func responderMain(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("weft lab responder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name to answer with")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", fmt.Sprintf(":%d", ResponderPort))
	if err != nil {
		fmt.Fprintln(stderr, "weft lab responder:", err)
		return 1
	}
	go func() { <-ctx.Done(); _ = ln.Close() }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return 0
		}
		go func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(conn, *name+"\n")
		}()
	}
}
