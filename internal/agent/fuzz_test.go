package agent

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeAttachRequest feeds arbitrary bodies to the local API's
// decoding and validation of attach requests: they must never panic, and
// what they accept must survive a round trip.
func FuzzDecodeAttachRequest(f *testing.F) {
	seeds := []string{
		`{"container_id":"c1","ifname":"eth0","netns":"/run/netns/c1"}`,
		`{"container_id":"c1","ifname":"eth0","netns":"/x","network":"blue","project":"d:p","subnets":["10.0.0.0/24"],"ips":["10.0.0.5","fd00::5"],"families":["ipv4","ipv6"],"security_groups":["d:p:sg"],"labels":{"a":"b"},"mtu":1400,"cni_network":"weft"}`,
		`{"container_id":"","ifname":"eth0"}`,
		`{"container_id":"c","ifname":"0123456789abcdef","netns":"/x"}`,
		`{"container_id":"c","ifname":"eth0","netns":"/x","ips":["10.0.0.5","10.0.0.5"]}`,
		`{"container_id":"c","ifname":"eth0","netns":"/x","families":["dual"]}`,
		`{"container_id":"c","ifname":"eth0","netns":"/x","mtu":-1}`,
		`{"container_id":"c","ifname":"eth0","netns":"/x","labels":{"":"x"}}`,
		`{"container_id":"c","ifname":"eth0","netns":"/x","unknown":1}`,
		`{"container_id":1}`,
		`{"container_id":"c"} {}`,
		`[]`,
		`null`,
		``,
		"{\"container_id\":\"c\\u0000\",\"ifname\":\"eth0\",\"netns\":\"/x\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeAttachRequest(bytes.NewReader(body))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := validateAttach(&req); err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("encode accepted request: %v", err)
		}
		again, err := decodeAttachRequest(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("accepted request does not decode again: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(normalizeReq(req), normalizeReq(again)) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
		}
		if err := validateAttach(&again); err != nil {
			t.Fatalf("round trip made the request invalid: %v", err)
		}
	})
}

// normalizeReq treats empty and nil collections alike.
func normalizeReq(r any) any {
	b, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
