package emulator

import (
	"encoding/json"
	"errors"
	"testing"
)

// fuzzSeeds are the fixture definitions plus a few hand-made ones.
func fuzzSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(readFixture(f, n))
	}
}

// FuzzDecodeApp checks that DecodeApp never panics, refuses only with a
// DefinitionError of status 400 or 422, and that an accepted definition
// renders to JSON that decodes to the same rendering (the 1.5 form is a
// fixed point).
func FuzzDecodeApp(f *testing.F) {
	fuzzSeeds(f, "rest-api-examples/app.json", "system-tests/pinger-container-app.json")
	for _, name := range []string{"marathon-lb/marathon15_apps.json", "rest-api-examples/app_list.json"} {
		var list struct {
			Apps []json.RawMessage `json:"apps"`
		}
		if err := json.Unmarshal(readFixture(f, name), &list); err != nil {
			f.Fatal(err)
		}
		for _, a := range list.Apps {
			f.Add([]byte(a))
		}
	}
	f.Add([]byte(webApp))
	f.Add([]byte(`{"id":"/a/b","args":["x"],"networks":[{"mode":"container/bridge"}],"container":{"type":"MESOS","portMappings":[{"containerPort":0,"protocol":"udp,tcp"}]}}`))
	f.Add([]byte(`{"id":"x","cmd":"y","container":{"type":"DOCKER","docker":{"image":"i","network":"USER"}},"ipAddress":{"networkName":"n"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		app, err := DecodeApp(data, "dcos")
		if err != nil {
			var de *DefinitionError
			if !errors.As(err, &de) || (de.Status != 400 && de.Status != 422) || de.Body.Message == "" {
				t.Fatalf("error %v (%T)", err, err)
			}
			return
		}
		first, err := marshal(app.object())
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		again, err := DecodeApp(first, "dcos")
		if err != nil {
			t.Fatalf("rendered app does not decode: %v\n%s", err, first)
		}
		second, err := marshal(again.object())
		if err != nil {
			t.Fatal(err)
		}
		if string(first) != string(second) {
			t.Fatalf("not a fixed point:\n%s\n%s", first, second)
		}
	})
}

// FuzzDecodePod is FuzzDecodeApp for pods.
func FuzzDecodePod(f *testing.F) {
	fuzzSeeds(f, "rest-api-examples/pod.json", "system-tests/simple-pod.json")
	f.Add([]byte(twoContainerPod))
	f.Fuzz(func(t *testing.T, data []byte) {
		pod, err := DecodePod(data, "dcos")
		if err != nil {
			var de *DefinitionError
			if !errors.As(err, &de) || (de.Status != 400 && de.Status != 422) {
				t.Fatalf("error %v (%T)", err, err)
			}
			return
		}
		first, err := marshal(pod.object())
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		again, err := DecodePod(first, "dcos")
		if err != nil {
			t.Fatalf("rendered pod does not decode: %v\n%s", err, first)
		}
		if second, _ := marshal(again.object()); string(first) != string(second) {
			t.Fatalf("not a fixed point:\n%s\n%s", first, second)
		}
	})
}
