package weftctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// empty stands for an unset value in a table cell.
const empty = "-"

// table writes aligned columns under a header in capitals.
type table struct {
	tw *tabwriter.Writer
}

func (c *cli) table(header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(c.stdout, 0, 8, 3, ' ', 0)}
	t.row(header...)
	return t
}

// row adds one line; empty cells print as "-".
func (t *table) row(cells ...string) {
	for i, s := range cells {
		if s == "" {
			s = empty
		}
		// A tab or newline inside a value would break the columns.
		s = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, s)
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, s)
	}
	io.WriteString(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// items is a list of raw objects; it prints as [] when empty.
type items []json.RawMessage

// MarshalJSON implements json.Marshaler.
func (l items) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]json.RawMessage(l))
}

// writeJSON prints v as indented JSON.
func (c *cli) writeJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	b = append(b, '\n')
	_, err = c.stdout.Write(b)
	return err
}

// writeBody prints a JSON body the controller sent, indented, with its
// keys and values as they came.
func (c *cli) writeBody(raw json.RawMessage, what string) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	buf.WriteByte('\n')
	_, err := c.stdout.Write(buf.Bytes())
	return err
}

// decodeItems decodes the raw items of a list of plural.
func decodeItems[T any](raws []json.RawMessage, plural string) ([]T, error) {
	out := make([]T, 0, len(raws))
	for i, raw := range raws {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("decode %s item %d: %w", plural, i, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// renderNetworks prints networks as the controller sent them: a JSON
// array (list) or object, or a table.
func (c *cli) renderNetworks(raws []json.RawMessage, list bool) error {
	if c.output == outputJSON {
		if list {
			return c.writeJSON(items(raws))
		}
		return c.writeJSON(raws[0])
	}
	nets, err := decodeItems[api.Network](raws, pluralNetworks)
	if err != nil {
		return err
	}
	t := c.table("NAME", "FQ_NAME", "KIND", "VNI", "SUBNETS", "UUID")
	for _, n := range nets {
		cidrs := make([]string, len(n.Subnets))
		for i, s := range n.Subnets {
			cidrs[i] = s.CIDR
		}
		t.row(n.Name, n.FQName, string(n.NetworkKind), itoa(n.VNI), strings.Join(cidrs, ","), n.UUID)
	}
	return t.flush()
}

// showNetwork prints one network in detail.
func (c *cli) showNetwork(n api.Network) error {
	kv := tabwriter.NewWriter(c.stdout, 0, 8, 1, ' ', 0)
	field := func(k, v string) {
		if v == "" {
			v = empty
		}
		fmt.Fprintf(kv, "%s:\t%s\n", k, v)
	}
	field("Name", n.Name)
	field("FQ name", n.FQName)
	field("UUID", n.UUID)
	field("Kind", string(n.NetworkKind))
	field("VNI", itoa(n.VNI))
	field("MTU", itoa(n.MTU))
	labels := make([]string, 0, len(n.Labels))
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		labels = append(labels, k+"="+n.Labels[k])
	}
	field("Labels", strings.Join(labels, ","))
	field("Created", timeText(n.CreatedAt))
	field("Updated", timeText(n.UpdatedAt))
	if len(n.Subnets) == 0 {
		field("Subnets", "")
		return kv.Flush()
	}
	if err := kv.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "Subnets:")
	t := &table{tw: tabwriter.NewWriter(c.stdout, 0, 8, 3, ' ', 0)}
	t.row("  CIDR", "GATEWAY", "BLOCK_PREFIX")
	for _, s := range n.Subnets {
		t.row("  "+s.CIDR, s.Gateway, itoa(s.BlockPrefix))
	}
	return t.flush()
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// renderReservations prints address reservations as a JSON array or a
// table.
func (c *cli) renderReservations(rs []api.IPReservation) error {
	if c.output == outputJSON {
		if rs == nil {
			rs = []api.IPReservation{}
		}
		return c.writeJSON(rs)
	}
	t := c.table("NETWORK", "ADDRESS", "OWNER", "NODE")
	for _, r := range rs {
		addr := r.Address
		if addr == "" {
			addr = r.Name
		}
		t.row(r.Network, addr, r.Owner, r.Node)
	}
	return t.flush()
}
