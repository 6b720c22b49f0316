package overlaydp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// The NAT table (family inet, Options.NFTTable) holds four interval sets
// and one chain:
//
//	overlays4, overlays6: every overlay's address space;
//	masq4, masq6:         the spaces of overlays with NAT;
//	postrouting:          nat hook postrouting priority srcnat, masquerading
//	                      saddr in masqN and daddr not in overlaysN.
//
// It is the nftables form of the agent module's ipset "overlay" (with the
// overlay subnets as nomatch) and its MASQUERADE rule. The table is
// rebuilt whole, in one transaction, whenever its content changes; its
// comment carries a digest of the content so that an unchanged table is
// recognised without parsing nft's output.

const (
	natChain  = "postrouting"
	setOver4  = "overlays4"
	setOver6  = "overlays6"
	setMasq4  = "masq4"
	setMasq6  = "masq6"
	natPrefix = "weft overlay nat "
)

var natRules = []string{
	"ip saddr @" + setMasq4 + " ip daddr != @" + setOver4 + " masquerade",
	"ip6 saddr @" + setMasq6 + " ip6 daddr != @" + setOver6 + " masquerade",
}

type natPlan struct {
	overlays4, overlays6, masq4, masq6 []netip.Prefix
}

func (n *natPlan) sort() {
	for _, s := range [][]netip.Prefix{n.overlays4, n.overlays6, n.masq4, n.masq6} {
		slices.SortFunc(s, netip.Prefix.Compare)
	}
}

type natSet struct {
	name, typ string
	elems     []netip.Prefix
}

func (n natPlan) sets() []natSet {
	return []natSet{
		{setOver4, "ipv4_addr", n.overlays4},
		{setOver6, "ipv6_addr", n.overlays6},
		{setMasq4, "ipv4_addr", n.masq4},
		{setMasq6, "ipv6_addr", n.masq6},
	}
}

// digest identifies the table's content (without the comment).
func (n natPlan) digest() string {
	var b strings.Builder
	for _, s := range n.sets() {
		fmt.Fprintf(&b, "%s %s", s.name, s.typ)
		for _, e := range s.elems {
			b.WriteString(" " + e.String())
		}
		b.WriteString("\n")
	}
	for _, r := range natRules {
		b.WriteString(r + "\n")
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

func (n natPlan) comment() string { return natPrefix + n.digest() }

// natListing is the table as `nft list table inet <table>` prints it,
// normalised by normalizeNFT: what Dump shows.
func natListing(table string, n natPlan) []string {
	lines := []string{
		"table inet " + table + " {",
		fmt.Sprintf("comment %q", n.comment()),
	}
	for _, s := range n.sets() {
		lines = append(lines, "set "+s.name+" {", "type "+s.typ, "flags interval")
		if len(s.elems) > 0 {
			el := make([]string, len(s.elems))
			for i, e := range s.elems {
				el[i] = e.String()
			}
			lines = append(lines, "elements = { "+strings.Join(el, ", ")+" }")
		}
		lines = append(lines, "}")
	}
	lines = append(lines, "chain "+natChain+" {", "type nat hook postrouting priority srcnat; policy accept;")
	lines = append(lines, natRules...)
	lines = append(lines, "}", "}")
	return lines
}

// normalizeNFT turns nft's listing into lines without indentation, blank
// lines or handles, with wrapped element lists joined.
func normalizeNFT(out string) []string {
	var lines []string
	cont := false
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if i := strings.Index(l, " # handle "); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		if cont {
			lines[len(lines)-1] += " " + l
		} else {
			lines = append(lines, l)
		}
		cont = strings.HasSuffix(l, ",")
	}
	return lines
}
