package marathon

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readAllFrames reads frames until an error; io.EOF gives a nil error.
func readAllFrames(fr *FrameReader) ([]Frame, error) {
	var out []Frame
	for {
		f, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, f)
	}
}

// withEOL rewrites LF line ends to eol.
func withEOL(s, eol string) string { return strings.ReplaceAll(s, "\n", eol) }

// eventsTxtFrames is what rest-api-examples/events.txt holds.
func eventsTxtFrames(t *testing.T) []Frame {
	t.Helper()
	data := string(readFixture(t, "marathon/rest-api-examples/events.txt"))
	var want []Frame
	lines := strings.Split(data, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if name, ok := strings.CutPrefix(lines[i], "event: "); ok {
			d, _ := strings.CutPrefix(lines[i+1], "data: ")
			want = append(want, Frame{Event: name, Data: d})
		}
	}
	if len(want) != 3 {
		t.Fatalf("fixture has %d events, want 3", len(want))
	}
	return want
}

// splitReader returns data in two reads split at i.
func splitReader(data []byte, i int) io.Reader {
	return io.MultiReader(bytes.NewReader(data[:i]), bytes.NewReader(data[i:]))
}

func TestFrameReaderEventsFixture(t *testing.T) {
	want := eventsTxtFrames(t)
	raw := string(readFixture(t, "marathon/rest-api-examples/events.txt"))
	for _, eol := range []struct{ name, eol string }{{"LF", "\n"}, {"CRLF", "\r\n"}, {"CR", "\r"}} {
		data := []byte(withEOL(raw, eol.eol))
		readers := map[string]func() io.Reader{
			"whole":    func() io.Reader { return bytes.NewReader(data) },
			"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
			"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) },
		}
		for rname, mk := range readers {
			t.Run(eol.name+"/"+rname, func(t *testing.T) {
				got, err := readAllFrames(NewFrameReader(mk()))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("frames = %+v", got)
				}
			})
		}
		t.Run(eol.name+"/every split", func(t *testing.T) {
			for i := 0; i <= len(data); i++ {
				got, err := readAllFrames(NewFrameReader(splitReader(data, i)))
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("split at %d: %d frames, %v", i, len(got), err)
				}
			}
		})
	}
}

func TestFrameReaderCases(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		want       []Frame
		err        error
		heartbeats int
		comments   int
	}{
		{
			name:       "jetty heartbeats between events",
			in:         "\r\n\r\nevent: a\r\ndata: {\"x\":1}\r\n\r\n\r\n\r\nevent: b\r\ndata: {}\r\n\r\n\r\n",
			want:       []Frame{{Event: "a", Data: `{"x":1}`}, {Event: "b", Data: "{}"}},
			heartbeats: 5,
		},
		{
			name:     "comments",
			in:       ": hello\n:\nevent: a\n: inside\ndata: 1\n\n",
			want:     []Frame{{Event: "a", Data: "1"}},
			comments: 3,
		},
		{
			name: "multi-line data",
			in:   "event: m\ndata: {\"a\":\ndata: 1}\ndata\ndata:\n\n",
			want: []Frame{{Event: "m", Data: "{\"a\":\n1}\n\n"}},
		},
		{
			name: "one space removed, not two; no space",
			in:   "data:  two\n\ndata:none\n\n",
			want: []Frame{{Data: " two"}, {Data: "none"}},
		},
		{
			name:       "event without data dispatches nothing and resets the type",
			in:         "event: lonely\n\ndata: x\n\n",
			want:       []Frame{{Data: "x"}},
			heartbeats: 1,
		},
		{
			name: "id and retry and unknown fields",
			in:   "id: 7\nretry: 100\nfoo: bar\nevent: e\ndata: d\n\ndata: e\n\n",
			want: []Frame{{Event: "e", Data: "d", ID: "7"}, {Data: "e", ID: "7"}},
		},
		{
			name: "byte order mark",
			in:   "\xef\xbb\xbfevent: a\ndata: 1\n\n",
			want: []Frame{{Event: "a", Data: "1"}},
		},
		{
			name: "mixed line ends",
			in:   "event: a\rdata: 1\r\n\ndata: 2\n\r",
			want: []Frame{{Event: "a", Data: "1"}, {Data: "2"}},
		},
		{
			name: "truncated final event",
			in:   "event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: {\"trunc",
			want: []Frame{{Event: "a", Data: "1"}},
			err:  io.ErrUnexpectedEOF,
		},
		{
			name: "final event without its blank line",
			in:   "event: a\r\ndata: 1\r\n",
			err:  io.ErrUnexpectedEOF,
		},
		{
			name:       "empty and heartbeat-only streams end cleanly",
			in:         "\r\n\r\n",
			heartbeats: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, one := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tc.in)
				if one {
					r = iotest.OneByteReader(r)
				}
				fr := NewFrameReader(r)
				got, err := readAllFrames(fr)
				if !errors.Is(err, tc.err) && !(err == nil && tc.err == nil) {
					t.Errorf("one=%v: err = %v, want %v", one, err, tc.err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("one=%v: frames = %+v, want %+v", one, got, tc.want)
				}
				if fr.Heartbeats() != tc.heartbeats || fr.Comments() != tc.comments {
					t.Errorf("one=%v: heartbeats %d comments %d, want %d %d", one, fr.Heartbeats(), fr.Comments(), tc.heartbeats, tc.comments)
				}
			}
		})
	}
}

func TestFrameReaderTooLarge(t *testing.T) {
	fr := NewFrameReaderSize(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 50)
	if _, err := fr.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("long line: %v", err)
	}
	fr = NewFrameReaderSize(strings.NewReader(strings.Repeat("data: 0123456789\n", 10)+"\n"), 50)
	if _, err := fr.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("long data: %v", err)
	}
}

// TestFrameReaderCRDispatchesAtOnce checks that an event ending in a bare
// CR is dispatched without waiting for the next byte, which with Jetty's
// heartbeat ("\r", flush, "\n") may be 10 s away.
func TestFrameReaderCRDispatchesAtOnce(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	fr := NewFrameReader(pr)
	got := make(chan Frame, 1)
	go func() {
		f, err := fr.Next()
		if err == nil {
			got <- f
		}
	}()
	if _, err := pw.Write([]byte("event: a\r\ndata: 1\r\n\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if f.Event != "a" || f.Data != "1" {
			t.Errorf("frame = %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("frame not dispatched before the LF arrived")
	}
	// The LF that follows belongs to the CR: no heartbeat counted.
	go func() { _, _ = pw.Write([]byte("\ndata: 2\r\n\r\n")) }()
	f, err := fr.Next()
	if err != nil || f.Data != "2" || fr.Heartbeats() != 0 {
		t.Errorf("next = %+v, %v, heartbeats %d", f, err, fr.Heartbeats())
	}
}
