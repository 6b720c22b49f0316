package marathon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxFrameBytes bounds one line and one event's data in a
// FrameReader. api_post_event carries a whole app definition, so the bound
// is generous.
const DefaultMaxFrameBytes = 16 << 20

// ErrFrameTooLarge is returned by FrameReader.Next when a line or an
// event's data exceeds the reader's limit.
var ErrFrameTooLarge = errors.New("event stream frame too large")

// Frame is one dispatched server-sent event.
type Frame struct {
	// Event is the value of the last "event:" line, "" if there was none
	// (the WHATWG default type "message"). Marathon writes the event type.
	Event string
	// Data is the values of the event's "data:" lines joined with "\n".
	Data string
	// ID is the last event id seen ("id:" lines); Marathon sends none.
	ID string
}

// FrameReader parses a text/event-stream body exactly as the WHATWG
// server-sent events rules say and Marathon writes it (§4.2):
//
//   - lines end in CRLF, LF or CR, and a CR is handled without waiting
//     for the next byte (Jetty writes its heartbeat as "\r", flush, "\n");
//   - "field: value" lines, a single space after the colon removed; a
//     line without a colon is a field with an empty value;
//   - lines starting with ":" are comments;
//   - "data:" lines are joined with "\n";
//   - a blank line dispatches the event; a blank line with no data
//     pending (a heartbeat) dispatches nothing;
//   - a leading UTF-8 byte-order mark is skipped; "retry:" and unknown
//     fields are ignored.
//
// Bytes are consumed as they arrive, so a reader returning one byte at a
// time gives the same frames as one returning everything at once.
type FrameReader struct {
	br      *bufio.Reader
	max     int
	line    []byte
	skipLF  bool // the previous line ended in CR: a following LF belongs to it
	started bool // past the optional byte-order mark

	event    string
	data     []byte
	hasData  bool
	pending  bool // some field of an undispatched event was seen
	lastID   string
	comments int
	blanks   int
}

// NewFrameReader returns a FrameReader on r with DefaultMaxFrameBytes.
func NewFrameReader(r io.Reader) *FrameReader {
	return NewFrameReaderSize(r, DefaultMaxFrameBytes)
}

// NewFrameReaderSize returns a FrameReader that fails with ErrFrameTooLarge
// on lines or event data longer than limit bytes.
func NewFrameReaderSize(r io.Reader, limit int) *FrameReader {
	if limit <= 0 {
		limit = DefaultMaxFrameBytes
	}
	return &FrameReader{br: bufio.NewReaderSize(r, min(64<<10, max(4<<10, limit))), max: limit}
}

// Next returns the next event. At the end of the input it returns io.EOF
// if the stream ended between events, or io.ErrUnexpectedEOF if it ended
// inside one (a truncated event is never dispatched). Errors of the
// underlying reader are returned as they are.
func (fr *FrameReader) Next() (Frame, error) {
	for {
		line, err := fr.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if fr.pending || len(line) > 0 {
					return Frame{}, io.ErrUnexpectedEOF
				}
				return Frame{}, io.EOF
			}
			return Frame{}, err
		}
		if f, ok, err := fr.processLine(line); err != nil || ok {
			return f, err
		}
	}
}

// Heartbeats returns how many blank lines dispatched nothing so far.
func (fr *FrameReader) Heartbeats() int { return fr.blanks }

// Comments returns how many comment lines were skipped so far.
func (fr *FrameReader) Comments() int { return fr.comments }

// readLine returns the next line without its terminator. At the end of the
// input it returns the unterminated rest (possibly empty) and the error.
func (fr *FrameReader) readLine() ([]byte, error) {
	fr.line = fr.line[:0]
	for {
		if fr.br.Buffered() == 0 {
			if _, err := fr.br.Peek(1); err != nil {
				return fr.line, err
			}
		}
		buf, _ := fr.br.Peek(fr.br.Buffered())
		if fr.skipLF {
			fr.skipLF = false
			if buf[0] == '\n' {
				_, _ = fr.br.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(fr.line)+len(buf) > fr.max {
				return nil, fmt.Errorf("%w: line longer than %d bytes", ErrFrameTooLarge, fr.max)
			}
			fr.line = append(fr.line, buf...)
			_, _ = fr.br.Discard(len(buf))
			continue
		}
		if len(fr.line)+i > fr.max {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrFrameTooLarge, fr.max)
		}
		fr.line = append(fr.line, buf[:i]...)
		fr.skipLF = buf[i] == '\r'
		_, _ = fr.br.Discard(i + 1)
		if !fr.started {
			fr.started = true
			fr.line = bytes.TrimPrefix(fr.line, []byte("\xef\xbb\xbf"))
		}
		return fr.line, nil
	}
}

// processLine interprets one line; ok reports a dispatched frame.
func (fr *FrameReader) processLine(line []byte) (f Frame, ok bool, err error) {
	if len(line) == 0 {
		if !fr.hasData {
			fr.event = ""
			fr.pending = false
			fr.blanks++
			return Frame{}, false, nil
		}
		data := fr.data[:len(fr.data)-1] // drop the last "\n"
		f = Frame{Event: fr.event, Data: string(data), ID: fr.lastID}
		fr.event, fr.data, fr.hasData, fr.pending = "", fr.data[:0], false, false
		return f, true, nil
	}
	if line[0] == ':' {
		fr.comments++
		return Frame{}, false, nil
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		fr.event = string(value)
		fr.pending = true
	case "data":
		if len(fr.data)+len(value)+1 > fr.max {
			return Frame{}, false, fmt.Errorf("%w: event data longer than %d bytes", ErrFrameTooLarge, fr.max)
		}
		fr.data = append(fr.data, value...)
		fr.data = append(fr.data, '\n')
		fr.hasData = true
		fr.pending = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			fr.lastID = string(value)
		}
		fr.pending = true
	default:
		// "retry" and unknown fields are ignored.
	}
	return Frame{}, false, nil
}
