package emulator

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// timeFormat is Marathon's Timestamp format (yyyy-MM-dd'T'HH:mm:ss.SSS'Z').
const timeFormat = "2006-01-02T15:04:05.000Z"

// formatTime renders t as Marathon does: UTC with milliseconds.
func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// uuidGen makes time-based (version 1) UUIDs, the kind Marathon uses for
// instance ids, with a random clock sequence and a random multicast node.
type uuidGen struct {
	mu   sync.Mutex
	last uint64
	node [6]byte
	seq  uint16
}

// gregorianOffset is the number of 100 ns intervals between 1582-10-15
// and 1970-01-01.
const gregorianOffset = 0x01B21DD213814000

func newUUIDGen() *uuidGen {
	g := &uuidGen{}
	var b [8]byte
	_, _ = rand.Read(b[:])
	copy(g.node[:], b[:6])
	g.node[0] |= 0x01 // multicast bit: not a real MAC address
	g.seq = binary.BigEndian.Uint16(b[6:]) & 0x3fff
	return g
}

func (g *uuidGen) next(now time.Time) string {
	g.mu.Lock()
	ts := uint64(now.UnixNano()/100) + gregorianOffset
	if ts <= g.last {
		ts = g.last + 1
	}
	g.last = ts
	seq := g.seq | 0x8000
	node := g.node
	g.mu.Unlock()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(ts), uint16(ts>>32), uint16(ts>>48)&0x0fff|0x1000, seq, node[:])
}

// randomUUID returns a version 4 UUID (deployment ids).
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// idSegment is Marathon's PathId segment pattern.
var idSegment = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`)

// idPatternMessage is Marathon's validation message for a bad path id.
const idPatternMessage = `must fully match regular expression '^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$'`

// canonicalID makes a run spec id absolute ("web" → "/web", "/a/./b/"
// → "/a/b") and reports whether every segment is valid.
func canonicalID(id string) (string, bool) {
	var segs []string
	ok := true
	for _, s := range strings.Split(id, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			if !idSegment.MatchString(s) {
				ok = false
			}
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		return "/", false
	}
	return "/" + strings.Join(segs, "/"), ok
}

// safePath is PathId.safePath: "/grp/app" → "grp_app".
func safePath(id string) string {
	return strings.ReplaceAll(strings.TrimPrefix(id, "/"), "/", "_")
}

// toHostname is PathId.toHostname: "/grp/app" → "app.grp".
func toHostname(id string) string {
	segs := strings.Split(strings.TrimPrefix(id, "/"), "/")
	for i, j := 0, len(segs)-1; i < j; i, j = i+1, j-1 {
		segs[i], segs[j] = segs[j], segs[i]
	}
	return strings.Join(segs, ".")
}

// appTaskID is the ≥ 1.8 app task id of an instance's incarnation.
func appTaskID(instanceID string, incarnation int) string {
	return fmt.Sprintf("%s._app.%d", instanceID, incarnation)
}

// podTaskID is the ≥ 1.8 task id of a pod container's incarnation.
func podTaskID(instanceID, container string, incarnation int) string {
	return fmt.Sprintf("%s.%s.%d", instanceID, container, incarnation)
}

// looksLikeMarathonTask reports whether a Mesos task id has the form of a
// Marathon task id (used to spot tasks an earlier run left behind).
func looksLikeMarathonTask(id string) bool {
	return strings.Contains(id, ".instance-") || strings.Contains(id, ".marathon-")
}

// remoteIP returns the IP part of a request's remote address.
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// marshal renders v as compact JSON without HTML escaping (Play JSON
// does not escape <, > and &).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
