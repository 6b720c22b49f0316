package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
)

func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ports")
	j, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	entries := []*Entry{
		{ContainerID: "c1", IfName: "eth0", State: StateAttached, Owner: "c1/eth0", IPs: []JournalIP{{Address: "10.0.0.2/24", Owner: "spare:n1"}},
			Labels: map[string]string{"a": "b"}, Routes: []api.AttachedRoute{{Dst: "0.0.0.0/0", GW: "10.0.0.1"}}},
		{ContainerID: "c/with:odd chars\u00e9", IfName: "eth1", State: StateReleasing},
		{PortUUID: "93c2c386-6e79-485e-bfa4-b9daa713133b", External: true, State: StateAttached, Contrail: &ContrailInfo{VMName: "vm"}},
	}
	for _, e := range entries {
		if err := j.Put(e); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	// A copy handed out does not alias the journal's.
	got, _ := j.Get(entries[0].Key())
	got.IPs[0].Owner = "changed"
	got.Labels["a"] = "changed"
	if again, _ := j.Get(entries[0].Key()); again.IPs[0].Owner != "spare:n1" || again.Labels["a"] != "b" {
		t.Fatalf("journal entry changed through a copy: %+v", again)
	}
	// Leftovers of a crash and garbage.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-x.json-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.Delete(entries[1].Key()); err != nil {
		t.Fatal(err)
	}
	if err := j.Delete("missing"); err != nil {
		t.Fatalf("delete of a missing entry: %v", err)
	}

	j2, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if j2.Len() != 2 {
		t.Fatalf("reloaded %d entries, want 2: %+v", j2.Len(), j2.Entries())
	}
	for _, e := range []*Entry{entries[0], entries[2]} {
		got, ok := j2.Get(e.Key())
		if !ok || got.State != e.State || got.External != e.External || got.CreatedAt.IsZero() {
			t.Fatalf("entry %s reloaded as %+v", e.describe(), got)
		}
	}
	names, _ := os.ReadDir(dir)
	var files []string
	for _, n := range names {
		files = append(files, n.Name())
		if info, _ := n.Info(); info != nil && !strings.HasSuffix(n.Name(), ".corrupt") && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", n.Name(), info.Mode().Perm())
		}
	}
	if len(files) != 3 || !slices.Contains(files, "bad.json.corrupt") {
		t.Fatalf("files after reload: %v", files)
	}
}
