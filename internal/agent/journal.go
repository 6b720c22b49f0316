package agent

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

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
	// Bridge is the Mesos bridge of an attachment to an overlay network
	// (m-dcos); empty for virtual networks.
	Bridge string `json:"bridge,omitempty"`
	// MTU of the container interface as asked for; 0 is the network's.
	MTU int         `json:"mtu,omitempty"`
	IPs []JournalIP `json:"ips"`
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
	c.Routes = slices.Clone(e.Routes)
	c.SecurityGroups = slices.Clone(e.SecurityGroups)
	c.Labels = maps.Clone(e.Labels)
	if e.Contrail != nil {
		ci := *e.Contrail
		ci.Port = slices.Clone(e.Contrail.Port)
		c.Contrail = &ci
	}
	return &c
}

// Journal is the durable record of the node's attachments. It is a
// write-ahead log, <dir>/journal.log: every Put and Delete appends one
// record (a JSON line with a CRC) and returns once fdatasync has made it
// durable, so that a restart, even after SIGKILL or a power loss, loses
// nothing. Writers that arrive while a sync is under way share the next
// one (group commit): one append and a shared fdatasync cost a fraction
// of writing, syncing and renaming a file per entry. The log is rewritten
// with the live entries only (compacted) at open and whenever it has
// grown to several times their number. The journal keeps every entry in
// memory too; it is safe for concurrent use. Writes of one key are
// ordered by the caller (the attachment's lock).
//
// Journals written by earlier versions (one <sha256>.json file per entry)
// are read and moved into the log at open.
type Journal struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*Entry // committed: durable

	// wmu orders appends; it guards the fields up to smu.
	wmu     sync.Mutex
	f       *os.File          // journal.log, opened for appending
	size    int64             // bytes of whole records in f
	live    map[string][]byte // the log's view: key -> record of its last put
	records int               // records in f
	written uint64            // records appended since open
	rewrite bool              // f may hold a torn record: rewrite it before syncing

	// smu makes one sync (or compaction) at a time.
	smu    sync.Mutex
	synced uint64 // appends made durable

	lock *os.File // flocked while the journal is open
}

// ErrJournal wraps every failure to write the journal.
var ErrJournal = errors.New("journal")

const (
	logName  = "journal.log"
	lockName = "journal.lock"
	// A log holding more than compactFactor records per live entry (and
	// more than compactMin) is compacted.
	compactFactor = 4
	compactMin    = 256
)

// record is one line of the log: a put of an entry or the delete of a key.
type record struct {
	Put    *Entry `json:"put,omitempty"`
	Delete string `json:"delete,omitempty"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// frame encodes a record as a log line: 8 hex digits of the CRC-32C of
// the JSON, a space, the JSON, a newline.
func frame(r record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, len(b)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(b, crcTable))
	line = append(line, b...)
	return append(line, '\n'), nil
}

// unframe decodes a log line (without its newline).
func unframe(line []byte) (record, error) {
	var r record
	sum, b, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(sum) != 8 {
		return r, errors.New("no checksum")
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil || uint32(want) != crc32.Checksum(b, crcTable) {
		return r, errors.New("checksum mismatch")
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	if (r.Put == nil) == (r.Delete == "") {
		return r, errors.New("neither a put nor a delete")
	}
	return r, nil
}

// usable reports whether a loaded entry can be kept.
func usable(e *Entry) bool { return e.State != "" && (e.ContainerID != "" || e.External) }

// OpenJournal opens (creating it when needed) the journal in dir and loads
// every entry. Entry files of the earlier format are read first and moved
// into the log; one that cannot be decoded is renamed to *.corrupt and
// logged, never fatal. A log that ends in a torn or corrupt record (a
// crash during an append that was never acknowledged) is cut there.
func OpenJournal(dir string, log *slog.Logger) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrJournal, dir, err)
	}
	j := &Journal{dir: dir, log: log, entries: map[string]*Entry{}, live: map[string][]byte{}}
	// One journal per directory: opening rewrites the log.
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s is in use by another agent: %w", ErrJournal, dir, err)
	}
	j.lock = lock
	ok := false
	defer func() {
		if !ok {
			_ = j.Close()
		}
	}()
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrJournal, dir, err)
	}
	var legacy []string
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			_ = os.Remove(path)
			continue
		case name == logName || name == lockName || de.IsDir() || !strings.HasSuffix(name, ".json"):
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s: %w", ErrJournal, path, err)
		}
		var e Entry
		if err := json.Unmarshal(b, &e); err != nil || !usable(&e) {
			log.Error("journal entry is unreadable; moved aside", "file", path, "err", err)
			_ = os.Rename(path, path+".corrupt")
			continue
		}
		j.entries[e.Key()] = &e
		legacy = append(legacy, path)
	}
	if err := j.replay(filepath.Join(dir, logName)); err != nil {
		return nil, err
	}
	// Start from a fresh log of the live entries: it drops a torn tail
	// and holds the entries of older files, which may then go.
	for key, e := range j.entries {
		line, err := frame(record{Put: e})
		if err != nil {
			return nil, fmt.Errorf("%w: encode entry: %w", ErrJournal, err)
		}
		j.live[key] = line
	}
	if err := j.compactLocked(); err != nil {
		return nil, err
	}
	if len(legacy) > 0 {
		for _, path := range legacy {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%w: remove %s: %w", ErrJournal, path, err)
			}
		}
		if err := syncDir(dir); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrJournal, err)
		}
		log.Info("journal moved into a write-ahead log", "dir", dir, "entries", len(legacy))
	}
	ok = true
	return j, nil
}

// replay applies the records of the log at path to j.entries, up to the
// first one that is torn or corrupt.
func (j *Journal) replay(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrJournal, path, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("%w: read %s: %w", ErrJournal, path, err)
		}
		r, derr := unframe(bytes.TrimSuffix(line, []byte("\n")))
		if err == io.EOF || derr != nil {
			// Only the last append can be torn; anything after a bad
			// record is dropped with it.
			j.log.Warn("journal log ends in a torn or corrupt record; dropping it and what follows", "file", path, "record", n, "offset", off, "err", cmp.Or(derr, err))
			return nil
		}
		off += int64(len(line))
		switch {
		case r.Put != nil && usable(r.Put):
			j.entries[r.Put.Key()] = r.Put
		case r.Put != nil:
			j.log.Error("journal record holds an unusable entry; skipped", "file", path, "record", n)
		default:
			delete(j.entries, r.Delete)
		}
	}
}

// compactLocked writes the live entries to a new log, makes it durable and
// puts it in place of the current one; every record appended so far is
// then durable. The caller holds smu and wmu (or has not shared j yet).
func (j *Journal) compactLocked() error {
	f, err := os.CreateTemp(j.dir, ".tmp-"+logName+"-")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	var size int64
	for _, key := range slices.Sorted(maps.Keys(j.live)) {
		n, _ := w.Write(j.live[key])
		size += int64(n)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrJournal, f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: fsync %s: %w", ErrJournal, f.Name(), err)
	}
	if err := os.Rename(f.Name(), filepath.Join(j.dir, logName)); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if err := syncDir(j.dir); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	ok = true
	if j.f != nil {
		_ = j.f.Close()
	}
	// CreateTemp opened it read-write at offset 0; appends go at its end.
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	j.f, j.size, j.records, j.rewrite = f, size, len(j.live), false
	j.synced = j.written
	return nil
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
	for _, key := range slices.Sorted(maps.Keys(j.entries)) {
		out = append(out, j.entries[key].clone())
	}
	return out
}

// scan calls fn with every entry, in no particular order, without copying
// them: for the attach path, which reads a few fields of every entry. It
// holds the journal's lock: fn must only read the entry, keep no reference
// to it, and not call the journal.
func (j *Journal) scan(fn func(*Entry)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.entries {
		fn(e)
	}
}

// Len is the number of entries.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

// Put writes the entry durably, replacing any entry with its key. The
// entry is in the journal only once Put returns nil.
func (j *Journal) Put(e *Entry) error { return j.put(e, true) }

// PutUnsynced writes the entry like Put but does not wait for it to be
// durable: the next durable write makes it so, and a crash before that
// may lose it. It is for what the agent may lose and redo: the
// controller's acknowledgements, which a restarted agent asks for again
// (idempotently).
func (j *Journal) PutUnsynced(e *Entry) error { return j.put(e, false) }

func (j *Journal) put(e *Entry, durable bool) error {
	e = e.clone()
	e.UpdatedAt = time.Now().UTC()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = e.UpdatedAt
	}
	line, err := frame(record{Put: e})
	if err != nil {
		return fmt.Errorf("%w: encode entry: %w", ErrJournal, err)
	}
	key := e.Key()
	if err := j.commit(key, line, true, durable); err != nil {
		return fmt.Errorf("%w: write entry of %s: %w", ErrJournal, e.describe(), err)
	}
	j.mu.Lock()
	j.entries[key] = e
	j.mu.Unlock()
	return nil
}

// Delete removes the entry with the key, durably. A missing entry is not
// an error.
func (j *Journal) Delete(key string) error { return j.del(key, true) }

// DeleteUnsynced removes the entry like Delete but does not wait for the
// removal to be durable (see PutUnsynced): a crash may bring the entry
// back.
func (j *Journal) DeleteUnsynced(key string) error { return j.del(key, false) }

func (j *Journal) del(key string, durable bool) error {
	j.mu.Lock()
	_, ok := j.entries[key]
	j.mu.Unlock()
	if !ok {
		return nil
	}
	line, err := frame(record{Delete: key})
	if err != nil {
		return fmt.Errorf("%w: encode delete: %w", ErrJournal, err)
	}
	if err := j.commit(key, line, false, durable); err != nil {
		return fmt.Errorf("%w: delete entry: %w", ErrJournal, err)
	}
	j.mu.Lock()
	delete(j.entries, key)
	j.mu.Unlock()
	return nil
}

// commit appends a record (a put of key when put is set, else its delete)
// and, when durable is set, waits until it is durable.
func (j *Journal) commit(key string, line []byte, put, durable bool) error {
	j.wmu.Lock()
	if j.f == nil {
		j.wmu.Unlock()
		return errors.New("closed")
	}
	if _, err := j.f.Write(line); err != nil {
		// A short write leaves a torn record: cut it, or rewrite the log
		// before the next sync.
		if terr := j.f.Truncate(j.size); terr != nil {
			j.rewrite = true
		}
		j.wmu.Unlock()
		return err
	}
	j.size += int64(len(line))
	if put {
		j.live[key] = line
	} else {
		delete(j.live, key)
	}
	j.records++
	j.written++
	seq := j.written
	j.wmu.Unlock()
	if !durable {
		return nil
	}
	return j.sync(seq)
}

// sync makes appends up to seq durable: with one fdatasync for every
// append made before it started (group commit), or by compacting the log
// when that is due or the log may hold a torn record. A failed fdatasync
// leaves the fate of the written pages unknown, so the log is then
// rewritten instead of trusted.
func (j *Journal) sync(seq uint64) error {
	j.smu.Lock()
	defer j.smu.Unlock()
	j.wmu.Lock()
	if j.f == nil {
		j.wmu.Unlock()
		return errors.New("closed")
	}
	if j.rewrite || (j.records > compactMin && j.records > compactFactor*len(j.live)) {
		defer j.wmu.Unlock()
		return j.compactLocked()
	}
	if j.synced >= seq {
		j.wmu.Unlock()
		return nil
	}
	target, f := j.written, j.f
	j.wmu.Unlock()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		j.wmu.Lock()
		defer j.wmu.Unlock()
		if cerr := j.compactLocked(); cerr != nil {
			j.rewrite = true
			return fmt.Errorf("fdatasync %s: %w (and rewriting it: %v)", f.Name(), err, cerr)
		}
		return nil
	}
	j.synced = target
	return nil
}

// Close closes the log file; later writes fail. Idempotent.
func (j *Journal) Close() error {
	j.smu.Lock()
	defer j.smu.Unlock()
	j.wmu.Lock()
	defer j.wmu.Unlock()
	var errs []error
	if j.f != nil {
		errs = append(errs, j.f.Close())
		j.f = nil
	}
	if j.lock != nil {
		errs = append(errs, j.lock.Close())
		j.lock = nil
	}
	return errors.Join(errs...)
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
