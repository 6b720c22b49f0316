package api

// MaxPortSyncItems bounds the items of one PortSyncRequest.
const MaxPortSyncItems = 256

// PortSyncRequest is a node agent's batch of controller work for the
// attachments of its node (POST /v1/nodes/{name}/port-sync): ports to
// create together with the hand-over of the spare addresses they took,
// and ports to delete together with the release of their addresses. The
// controller writes the whole batch in one store transaction when it can,
// else item by item; each item succeeds or fails on its own.
type PortSyncRequest struct {
	Attach []PortAttach `json:"attach,omitempty"`
	Detach []PortDetach `json:"detach,omitempty"`
}

// PortAttach creates Port, which must not exist yet and must be on the
// node of the request, and hands each address of HandOver over from its
// FromOwner to Owner, recording the port on its reservation.
type PortAttach struct {
	Port     *Port      `json:"port"`
	Owner    string     `json:"owner"`
	HandOver []HandOver `json:"hand_over,omitempty"`
}

// HandOver names an address reserved by FromOwner.
type HandOver struct {
	IP        string `json:"ip"`
	FromOwner string `json:"from_owner"`
}

// PortDetach deletes the port Port of the node (when given; a port that is
// gone already is fine) and releases each address of IPs in Network that
// is held by Owner or by the address's own Owner. An address that is not
// reserved, or that another owner holds, is left alone.
type PortDetach struct {
	Network string      `json:"network"`
	Port    string      `json:"port,omitempty"`
	Owner   string      `json:"owner"`
	IPs     []ReleaseIP `json:"ips,omitempty"`
}

// ReleaseIP is an address to release and the owner it may still have
// besides the detach's owner (a spare never handed over).
type ReleaseIP struct {
	IP    string `json:"ip"`
	Owner string `json:"owner,omitempty"`
}

// PortSyncResponse has one result per item, in the order of the request.
type PortSyncResponse struct {
	Attach []PortSyncResult `json:"attach"`
	Detach []PortSyncResult `json:"detach"`
}

// PortSyncResult is the outcome of one item; Error is empty on success.
// Released lists the addresses a detach released.
type PortSyncResult struct {
	Error    string   `json:"error,omitempty"`
	Field    string   `json:"field,omitempty"`
	Code     int      `json:"code,omitempty"`
	Released []string `json:"released,omitempty"`
}

// Err is the item's error, nil on success.
func (r PortSyncResult) Err() error {
	if r.Error == "" {
		return nil
	}
	return ErrorFromStatus(r.Code, r.Error, r.Field)
}
