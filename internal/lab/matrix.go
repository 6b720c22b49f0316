package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/weft-sdn/weft/internal/netns"
)

// Reach is one probe of a connectivity matrix: a TCP connection from an
// interface of a task (bound to it) to the identity responder at an
// address of another task's interface. OK means that task answered.
type Reach struct {
	From    string `json:"from"`
	FromIf  string `json:"from_ifname"`
	FromNet string `json:"from_network"`
	To      string `json:"to"`
	ToIf    string `json:"to_ifname"`
	Addr    string `json:"addr"`
	Network string `json:"network"`
	OK      bool   `json:"ok"`
}

// Endpoint is one interface of a live task.
type Endpoint struct {
	Task string
	Interface
}

func (e Endpoint) label() string { return fmt.Sprintf("%s/%s (%s)", e.Task, e.IfName, e.Network) }

// Matrix probes every address of every other live task's interfaces from
// every interface of every live task: a TCP connection bound to the source
// interface (1 s timeout, in parallel) to the task's identity responder,
// which must answer with the destination task's name. Interfaces on the
// same network must reach each other; interfaces on different networks
// must not, even where the addresses are the same.
func (l *Lab) Matrix(ctx context.Context) ([]Endpoint, []Reach, error) {
	tasks, err := l.Tasks(ctx)
	if err != nil {
		return nil, nil, err
	}
	netnsOf := map[string]string{}
	var eps []Endpoint
	for _, t := range tasks {
		netnsOf[t.Name] = t.Netns
		if t.Netns == "" {
			continue
		}
		for _, itf := range t.Interfaces {
			if len(itf.IPs) > 0 {
				eps = append(eps, Endpoint{Task: t.Name, Interface: itf})
			}
		}
	}
	var probes []Reach
	for _, from := range eps {
		for _, to := range eps {
			if from.Task == to.Task {
				continue
			}
			for _, a := range to.IPs {
				probes = append(probes, Reach{From: from.Task, FromIf: from.IfName, FromNet: from.Network, To: to.Task, ToIf: to.IfName, Addr: a, Network: to.Network})
			}
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p := &probes[i]
			who, err := whoAnswers(netnsOf[p.From], p.FromIf, p.Addr)
			p.OK = err == nil && who == p.To
		}()
	}
	wg.Wait()
	return eps, probes, nil
}

// whoAnswers connects from the interface ifname of the namespace at path to
// the responder at addr and returns the name it answers with.
func whoAnswers(path, ifname, addr string) (string, error) {
	var name string
	err := netns.Do(path, func() error {
		d := net.Dialer{Timeout: time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, ifname)
			}); err != nil {
				return err
			}
			return serr
		}}
		conn, err := d.Dial("tcp", net.JoinHostPort(addr, strconv.Itoa(ResponderPort)))
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		name = strings.TrimSpace(line)
		if name != "" {
			return nil
		}
		return err
	})
	return name, err
}

// WriteMatrix prints the matrix: a row per source interface, a column per
// destination interface; "yes" where the destination answered at every
// address, "-" where it never did, "partial" otherwise.
func WriteMatrix(w io.Writer, eps []Endpoint, probes []Reach) error {
	type key struct{ from, fromIf, to, toIf string }
	answered, asked := map[key]int{}, map[key]int{}
	for _, p := range probes {
		k := key{p.From, p.FromIf, p.To, p.ToIf}
		asked[k]++
		if p.OK {
			answered[k]++
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "FROM \\ TO")
	for _, to := range eps {
		fmt.Fprintf(tw, "\t%s %s", to.label(), strings.Join(to.IPs, ","))
	}
	fmt.Fprintln(tw)
	for _, from := range eps {
		fmt.Fprint(tw, from.label())
		for _, to := range eps {
			k := key{from.Task, from.IfName, to.Task, to.IfName}
			cell := "-"
			switch {
			case from.Task == to.Task:
				cell = "."
			case answered[k] == asked[k]:
				cell = "yes"
			case answered[k] > 0:
				cell = "partial"
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
