//go:build linux

package overlaydp

import (
	"context"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestNATRuleset checks the nft transaction against a golden ruleset, on
// knftables' in-memory fake (no root), and that the transaction replaces
// an older table whole.
func TestNATRuleset(t *testing.T) {
	ctx := context.Background()
	nft := knftables.NewFake(knftables.InetFamily, DefaultNFTTable)
	for _, s := range []State{dcosState(1, false, 2), dcosState(1, true, 2)} {
		p, _ := makePlan(s, DefaultRuleTable)
		tx := nft.NewTransaction()
		natTransaction(tx, p.nat)
		if err := nft.Run(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "nat_ruleset", nft.Dump())

	tx := nft.NewTransaction()
	natDeleteTransaction(tx)
	if err := nft.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if d := nft.Dump(); d != "" {
		t.Errorf("after delete: %q", d)
	}
}

func TestNormalizeNFT(t *testing.T) {
	out := "table inet x { # handle 3\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 9.0.0.0/8, 10.0.0.0/8,\n\t\t\t     11.0.0.0/8 }\n\t}\n\n}\n"
	got := normalizeNFT(out)
	want := []string{"table inet x {", "set s {", "type ipv4_addr", "flags interval", "elements = { 9.0.0.0/8, 10.0.0.0/8, 11.0.0.0/8 }", "}", "}"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, got[i], want[i])
		}
	}
}
