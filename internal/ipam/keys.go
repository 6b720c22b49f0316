package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Key layout. Every record of a network lives under a prefix ending with the
// network's uuid and a '/', so one network's records never match another's
// prefix.
const (
	// Prefix is the root of all of Weft's keys.
	Prefix = "/weft/v1"
	// ReservationPrefix holds <net-uuid>/<address> → api.IPReservation.
	ReservationPrefix = Prefix + "/obj/ip_reservation/"
	// BlockPrefix holds <net-uuid>/<cidr with '/' as '_'> → api.Block.
	BlockPrefix = Prefix + "/obj/block/"
	// QuarantinePrefix holds <net-uuid>/<address> → {"until", "owner"}.
	QuarantinePrefix = Prefix + "/ipam/quarantine/"
)

func reservationNetPrefix(netUUID string) string { return ReservationPrefix + netUUID + "/" }
func blockNetPrefix(netUUID string) string       { return BlockPrefix + netUUID + "/" }
func quarantineNetPrefix(netUUID string) string  { return QuarantinePrefix + netUUID + "/" }

func reservationKey(netUUID string, a netip.Addr) string {
	return reservationNetPrefix(netUUID) + a.String()
}

func quarantineKey(netUUID string, a netip.Addr) string {
	return quarantineNetPrefix(netUUID) + a.String()
}

func blockKey(netUUID string, p netip.Prefix) string {
	return blockNetPrefix(netUUID) + blockName(p)
}

// splitKey splits a key under root into the network uuid and the last
// segment.
func splitKey(root, key string) (netUUID, name string, ok bool) {
	rest, ok := strings.CutPrefix(key, root)
	if !ok {
		return "", "", false
	}
	netUUID, name, ok = strings.Cut(rest, "/")
	if !ok || netUUID == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return netUUID, name, true
}

// quarantineRecord is the value of a quarantine key: the released address
// may not be handed out automatically before Until.
type quarantineRecord struct {
	Until time.Time `json:"until"`
	Owner string    `json:"owner,omitempty"`
}

// parseQuarantine decodes a quarantine record. A record without a time is
// an error.
func parseQuarantine(b []byte) (quarantineRecord, error) {
	var q quarantineRecord
	if err := json.Unmarshal(b, &q); err != nil {
		return quarantineRecord{}, fmt.Errorf("decode quarantine record: %w", err)
	}
	if q.Until.IsZero() {
		return quarantineRecord{}, fmt.Errorf("decode quarantine record: no until time")
	}
	return q, nil
}
