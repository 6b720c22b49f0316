package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weft-sdn/weft/internal/api"
)

// Journal entry states.
const (
	// StateAttached: the interface exists (or is being re-created) and its
	// addresses are held for the container.
	StateAttached = "attached"
	// StateReleasing: the plugin said DEL (or an attach was undone); the
	// controller still has to forget the port and release the addresses.
	StateReleasing = "releasing"
)

// JournalIP is one address of an attachment.
type JournalIP struct {
	// Address in CIDR form with the subnet's prefix length (10.0.0.5/24).
	Address string `json:"address"`
	Gateway string `json:"gateway,omitempty"`
	// Owner is the owner of the reservation in the controller as far as
	// the agent knows: the spare owner until the address has been
	// assigned to the container, then the container's owner.
	Owner string `json:"owner"`
}

// JournalSubnet is a subnet of the entry's network as it was at attach
// time, kept so that the data plane can be rebuilt before the controller
// answers.
type JournalSubnet struct {
	CIDR    string `json:"cidr"`
	Gateway string `json:"gateway,omitempty"`
}

// ContrailInfo holds what the Contrail port API knows of a port that was
// registered through it (POST /port, POST /vm) rather than attached by the
// agent.
type ContrailInfo struct {
	VMUUID      string `json:"vm_uuid,omitempty"`
	VMName      string `json:"vm_name,omitempty"`
	VMProjectID string `json:"vm_project_id,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	IP6Address  string `json:"ip6_address,omitempty"`
	Type        int    `json:"type,omitempty"`
	RxVLAN      int    `json:"rx_vlan_id,omitempty"`
	TxVLAN      int    `json:"tx_vlan_id,omitempty"`
	VMIfName    string `json:"vm_ifname,omitempty"`
	VMNamespace string `json:"vm_namespace,omitempty"`
	// Port is the object as posted, answered back on GET /port.
	Port json.RawMessage `json:"port,omitempty"`
}

// Entry is one attachment in the journal: everything needed to answer the
// plugin again, rebuild the data plane and finish the controller side after
// a restart.
type Entry struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
	Netns       string `json:"netns,omitempty"`
	CNINetwork  string `json:"cni_network,omitempty"`

	NetworkUUID   string          `json:"network_uuid"`
	NetworkFQName string          `json:"network_fq_name"`
	VNI           int             `json:"vni,omitempty"`
	NetworkMTU    int             `json:"network_mtu,omitempty"`
	Subnets       []JournalSubnet `json:"subnets,omitempty"`

	PortUUID string `json:"port_uuid"`
	PortName string `json:"port_name,omitempty"`
	MAC      string `json:"mac,omitempty"`
	HostIf   string `json:"host_ifname,omitempty"`
	// MTU of the container interface as asked for; 0 is the network's.
	MTU      int         `json:"mtu,omitempty"`
	IPs      []JournalIP `json:"ips"`
	Gateways []string    `json:"gateways,omitempty"`
	// Routes are the routes handed to the container (a default route via
	// the gateway on the container's first interface of each family).
	Routes []api.AttachedRoute `json:"routes,omitempty"`
	// Owner is the owner of the container's reservations:
	// "<container-id>/<ifname>".
	Owner string `json:"owner"`

	SecurityGroups []string          `json:"security_groups,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`

	State string `json:"state"`
	// External marks a port registered through the Contrail port API; the
	// agent neither programs nor releases it.
	External bool          `json:"external,omitempty"`
	Contrail *ContrailInfo `json:"contrail,omitempty"`

	// PortSynced is set once the controller holds the Port object as
	// journalled.
	PortSynced bool `json:"port_synced,omitempty"`
	// DataplaneDetached is set once the data plane no longer holds the
	// interface (state releasing).
	DataplaneDetached bool `json:"dataplane_detached,omitempty"`

	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Key identifies the entry in the journal.
func (e *Entry) Key() string {
	if e.External {
		return externalKey(e.PortUUID)
	}
	return attachKey(e.ContainerID, e.IfName)
}

func attachKey(containerID, ifName string) string { return containerID + "\x00" + ifName }
func externalKey(portUUID string) string          { return "\x00external\x00" + portUUID }

// clone returns a deep copy.
func (e *Entry) clone() *Entry {
	c := *e
	c.Subnets = slices.Clone(e.Subnets)
	c.IPs = slices.Clone(e.IPs)
	c.Gateways = slices.Clone(e.Gateways)
	c.Routes = slices.Clone(e.Routes)
	c.SecurityGroups = slices.Clone(e.SecurityGroups)
	if e.Labels != nil {
		c.Labels = make(map[string]string, len(e.Labels))
		for k, v := range e.Labels {
			c.Labels[k] = v
		}
	}
	if e.Contrail != nil {
		ci := *e.Contrail
		ci.Port = slices.Clone(e.Contrail.Port)
		c.Contrail = &ci
	}
	return &c
}

// Journal is the durable record of the node's attachments: one JSON file
// per attachment under its directory, each written atomically (temporary
// file, fsync, rename, fsync of the directory) before the agent answers,
// so that a restart, even after SIGKILL or a power loss, loses nothing.
// It keeps every entry in memory too; it is safe for concurrent use.
type Journal struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*Entry
}

// ErrJournal wraps every failure to write the journal.
var ErrJournal = errors.New("journal")

// OpenJournal opens (creating it when needed) the journal in dir and loads
// every entry. Leftover temporary files are removed; a file that cannot be
// decoded is renamed to *.corrupt and logged, never fatal.
func OpenJournal(dir string, log *slog.Logger) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrJournal, dir, err)
	}
	j := &Journal{dir: dir, log: log, entries: map[string]*Entry{}}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrJournal, dir, err)
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			_ = os.Remove(path)
			continue
		case de.IsDir() || !strings.HasSuffix(name, ".json"):
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s: %w", ErrJournal, path, err)
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil || e.State == "" || (e.ContainerID == "" && !e.External) {
			log.Error("journal entry is unreadable; moved aside", "file", path, "err", err)
			_ = os.Rename(path, path+".corrupt")
			continue
		}
		if fileName(e.Key()) != name {
			log.Warn("journal entry has an unexpected file name; keeping it under its key", "file", path)
		}
		j.entries[e.Key()] = &e
	}
	return j, nil
}

// fileName is the file of an entry key: a hash, so that any container id
// or interface name makes a safe, fixed-length name.
func fileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16]) + ".json"
}

// Get returns a copy of the entry with the key.
func (j *Journal) Get(key string) (*Entry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.entries[key]
	if !ok {
		return nil, false
	}
	return e.clone(), true
}

// Entries returns copies of every entry, sorted by key.
func (j *Journal) Entries() []*Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]*Entry, 0, len(j.entries))
	for _, e := range j.entries {
		out = append(out, e.clone())
	}
	slices.SortFunc(out, func(a, b *Entry) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Len is the number of entries.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

// Put writes the entry durably, replacing any entry with its key. The
// entry is in the journal only once Put returns nil.
func (j *Journal) Put(e *Entry) error {
	e = e.clone()
	e.UpdatedAt = time.Now().UTC()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = e.UpdatedAt
	}
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: encode entry: %w", ErrJournal, err)
	}
	b = append(b, '\n')
	key := e.Key()
	// Writes of one key are serialised by the caller (the attachment's
	// lock); the mutex only guards the map, so that writes of different
	// attachments go to disk in parallel.
	if err := writeFileAtomic(j.dir, fileName(key), b); err != nil {
		return fmt.Errorf("%w: write entry of %s: %w", ErrJournal, e.describe(), err)
	}
	j.mu.Lock()
	j.entries[key] = e
	j.mu.Unlock()
	return nil
}

// Delete removes the entry with the key, durably. A missing entry is not
// an error.
func (j *Journal) Delete(key string) error {
	path := filepath.Join(j.dir, fileName(key))
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: remove %s: %w", ErrJournal, path, err)
	}
	if err := syncDir(j.dir); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	j.mu.Lock()
	delete(j.entries, key)
	j.mu.Unlock()
	return nil
}

// describe names the entry in messages.
func (e *Entry) describe() string {
	if e.External {
		return "external port " + e.PortUUID
	}
	return "container " + e.ContainerID + " interface " + e.IfName
}

// writeFileAtomic replaces dir/name with data: a temporary file in dir is
// written and fsynced, renamed over the target, and the directory fsynced,
// so that after a crash the file is either the old or the new content.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
