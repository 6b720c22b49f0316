//go:build linux

package overlaydp

import "sigs.k8s.io/knftables"

// natTransaction fills tx with the commands that replace the table with
// n's content: add (so that the delete cannot fail), delete, then create
// everything again, all applied atomically by nft.
func natTransaction(tx *knftables.Transaction, n natPlan) {
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo(n.comment())})
	for _, s := range n.sets() {
		tx.Add(&knftables.Set{Name: s.name, Type: s.typ, Flags: []knftables.SetFlag{knftables.IntervalFlag}})
	}
	tx.Add(&knftables.Chain{
		Name:     natChain,
		Type:     knftables.PtrTo(knftables.NATType),
		Hook:     knftables.PtrTo(knftables.PostroutingHook),
		Priority: knftables.PtrTo(knftables.SNATPriority),
	})
	for _, r := range natRules {
		tx.Add(&knftables.Rule{Chain: natChain, Rule: r})
	}
	for _, s := range n.sets() {
		for _, e := range s.elems {
			tx.Add(&knftables.Element{Set: s.name, Key: []string{e.String()}})
		}
	}
}

// natDeleteTransaction fills tx with the commands that remove the table,
// present or not.
func natDeleteTransaction(tx *knftables.Transaction) {
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
}
