package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzSSE checks the frame parser: it never panics, reading one byte at a
// time gives exactly what reading everything at once gives, and frames
// never contain a line terminator other than the "\n" joining data lines.
func FuzzSSE(f *testing.F) {
	events := string(readFixture(f, "marathon/rest-api-examples/events.txt"))
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		f.Add([]byte(withEOL(events, eol)))
	}
	f.Add([]byte(withEOL(events, "\r\n")[:len(events)/2]))
	f.Add([]byte("\xef\xbb\xbf: c\r\n\r\nevent: a\rdata: 1\ndata: 2\r\n\r\nid: 1\nretry: 5\n\n"))
	f.Add([]byte("data\n\nevent\n\ndata:\n\n:\n\r\r\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, errWhole := readAllFrames(NewFrameReaderSize(bytes.NewReader(data), 1<<10))
		one, errOne := readAllFrames(NewFrameReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 1<<10))
		if !reflect.DeepEqual(whole, one) || errClass(t, errWhole) != errClass(t, errOne) {
			t.Fatalf("whole: %q, %v\none byte: %q, %v", whole, errWhole, one, errOne)
		}
		for _, fr := range whole {
			if strings.ContainsAny(fr.Event+fr.ID, "\r\n") || strings.ContainsRune(fr.Data, '\r') {
				t.Fatalf("line terminator inside a frame: %q", fr)
			}
			// Dispatching a frame means it came from data lines; decoding
			// it must not panic.
			_, _ = DecodeEvent(fr.Event, []byte(fr.Data))
		}
	})
}

// errClass names the kind of a FrameReader error.
func errClass(t *testing.T, err error) string {
	switch {
	case err == nil:
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case errors.Is(err, ErrFrameTooLarge):
		return "too large"
	}
	t.Fatalf("unexpected error %v", err)
	return ""
}

// appSeeds are the app fixtures (first JSON value where prose follows).
func appSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, fx := range appFixtures {
		data := readFixture(f, fx.file)
		if fx.first {
			data = firstJSONValue(f, data)
		}
		if fx.list {
			var r struct{ Apps []json.RawMessage }
			if err := json.Unmarshal(data, &r); err != nil {
				f.Fatal(err)
			}
			for _, a := range r.Apps {
				out = append(out, a)
			}
			continue
		}
		out = append(out, data)
	}
	return out
}

// FuzzDecodeApp checks that app decoding fails only with a *DecodeError,
// and that the network view survives a round trip through JSON.
func FuzzDecodeApp(f *testing.F) {
	for _, s := range appSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"id":"/a","networks":[{"mode":"container","name":"n","labels":{"a":"b"}},{}],"ipAddress":{"networkName":"x"}}`))
	f.Add([]byte(`{"id":"/a","container":{"docker":{"network":"USER"}},"tasks":[{"id":"a.1","ipAddresses":[{"ipAddress":"::1"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		app, err := DecodeApp(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !strings.HasPrefix(de.Path, "$") {
				t.Fatalf("error %v is not a *DecodeError with a path", err)
			}
			return
		}
		nets := AppNetworks(app)
		if len(nets) == 0 {
			t.Fatal("no network attachment")
		}
		for i := range app.Tasks {
			_ = TaskAddresses(&app.Tasks[i])
			_, _ = InstanceIDFromTaskID(app.Tasks[i].ID)
		}
		b, err := json.Marshal(app)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeApp(b)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if got := AppNetworks(again); !reflect.DeepEqual(got, nets) {
			t.Fatalf("networks changed in a round trip: %+v → %+v", nets, got)
		}
	})
}

// FuzzDecodePodStatus checks pod-status decoding and the address view.
func FuzzDecodePodStatus(f *testing.F) {
	f.Add([]byte(podStatusJSON))
	for _, file := range []string{"marathon/rest-api-examples/pod.json", "marathon/system-tests/simple-pod.json"} {
		pod := readFixture(f, file)
		f.Add(pod) // a pod spec is a pod status without status fields
		f.Add([]byte(`{"id":"/p","spec":` + string(pod) + `,"status":"DEGRADED","instances":[{"id":"p.instance-1","status":"DEGRADED","networks":[{"name":"my-network","addresses":["10.1.1.1"]}],"containers":[{"name":"container1","containerId":"p.instance-1.container1.1","endpoints":[{"name":"httpendpoint","allocatedHostPort":31000}]}]}]}`))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodePodStatus(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !strings.HasPrefix(de.Path, "$") {
				t.Fatalf("error %v is not a *DecodeError with a path", err)
			}
			return
		}
		_ = PodNetworks(s.Spec)
		for i := range s.Instances {
			_ = PodInstanceAddresses(&s.Instances[i])
		}
		snap := NewSnapshot(nil, []PodStatus{*s})
		for id := range snap.Instances {
			if _, ok := snap.InstanceByID(id); !ok {
				t.Fatalf("instance %q not found by id", id)
			}
		}
	})
}

// FuzzDecodeEvent checks event decoding never panics and fails only with
// a *DecodeError.
func FuzzDecodeEvent(f *testing.F) {
	frames, err := readAllFrames(NewFrameReader(bytes.NewReader(readFixture(f, "marathon/rest-api-examples/events.txt"))))
	if err != nil {
		f.Fatal(err)
	}
	for _, fr := range frames {
		f.Add(fr.Event, []byte(fr.Data))
	}
	f.Add("instance_changed_event", []byte(`{"instanceId":"a.instance-1","condition":"Running","agentId":null,"eventType":"instance_changed_event"}`))
	f.Add("deployment_info", []byte(`{"plan":{"id":"p"},"currentStep":{"actions":[{"action":"StartPod","pod":"/p"}]},"eventType":"deployment_info"}`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		ev, err := DecodeEvent(name, data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		if ev.EventType() == "" {
			t.Fatal("event without a type")
		}
		if d, ok := ev.(*DeploymentEvent); ok {
			_ = d.RunSpecs()
		}
	})
}
