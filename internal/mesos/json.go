package mesos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Object is a JSON object whose fields are written in order, the way
// Mesos' streaming writers (jsonify) emit a protobuf or a /state document.
// MarshalSorted sorts it like any other object.
type Object []Field

// Field is one member of an Object.
type Field struct {
	Key   string
	Value any
}

// Get returns the value of the first field named key.
func (o Object) Get(key string) (any, bool) {
	for _, f := range o {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// DecodeObject parses data as a JSON object the way stout's
// JSON::parse<JSON::Object> does: numbers keep their literal text
// (json.Number), trailing non-whitespace is an error, and a non-object
// value fails with "Unexpected JSON type parsed". Values are nil, bool,
// string, json.Number, []any and map[string]any; a repeated key keeps its
// last value.
func DecodeObject(data []byte) (map[string]any, error) {
	v, err := decodeValue(data)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("Unexpected JSON type parsed")
	}
	return m, nil
}

// decodeValue parses one JSON value with json.Number numbers and rejects
// trailing data.
func decodeValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		off := dec.InputOffset()
		rest := strings.TrimSpace(string(data[min(int(off), len(data)):]))
		return nil, fmt.Errorf("Parsed JSON included non-whitespace trailing characters: %s", rest)
	}
	return v, nil
}

// MarshalSorted writes v as stout's stringify(JSON::Object) does: compact,
// every object's keys sorted bytewise (Object values included), strings
// escaped the stout way ('/' as "\/", control characters and DEL as
// \u00xx, other bytes verbatim), integers as integers and other numbers
// with FormatDouble. This is the byte format of the network.conf Mesos
// checkpoints and feeds to a CNI plugin.
//
// v may be built from nil, bool, string, json.Number, int, int64,
// uint32, uint64, float64, Object, map[string]any, []any, []string,
// []Object and json.RawMessage (re-encoded).
func MarshalSorted(v any) ([]byte, error) {
	w := stoutWriter{sortObjects: true}
	if err := w.value(v); err != nil {
		return nil, err
	}
	return w.buf, nil
}

// MarshalStout is MarshalSorted except that Object fields keep their
// order, as Mesos' jsonify writers do for /state and protobuf JSON.
func MarshalStout(v any) ([]byte, error) {
	var w stoutWriter
	if err := w.value(v); err != nil {
		return nil, err
	}
	return w.buf, nil
}

type stoutWriter struct {
	buf         []byte
	sortObjects bool
}

func (w *stoutWriter) value(v any) error {
	switch x := v.(type) {
	case nil:
		w.buf = append(w.buf, "null"...)
	case bool:
		w.buf = strconv.AppendBool(w.buf, x)
	case string:
		w.buf = appendStoutString(w.buf, x)
	case json.Number:
		s, err := formatNumber(string(x))
		if err != nil {
			return err
		}
		w.buf = append(w.buf, s...)
	case int:
		w.buf = strconv.AppendInt(w.buf, int64(x), 10)
	case int64:
		w.buf = strconv.AppendInt(w.buf, x, 10)
	case uint32:
		w.buf = strconv.AppendUint(w.buf, uint64(x), 10)
	case uint64:
		w.buf = strconv.AppendUint(w.buf, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("json: unsupported number %v", x)
		}
		w.buf = append(w.buf, FormatDouble(x)...)
	case Object:
		fields := []Field(x)
		if w.sortObjects {
			fields = append([]Field(nil), x...)
			sort.SliceStable(fields, func(i, j int) bool { return fields[i].Key < fields[j].Key })
		}
		return w.object(fields)
	case map[string]any:
		fields := make([]Field, 0, len(x))
		for k, v := range x {
			fields = append(fields, Field{k, v})
		}
		sort.Slice(fields, func(i, j int) bool { return fields[i].Key < fields[j].Key })
		return w.object(fields)
	case []any:
		return writeArray(w, x)
	case []string:
		return writeArray(w, x)
	case []Object:
		return writeArray(w, x)
	case json.RawMessage:
		if w.sortObjects {
			d, err := decodeValue(x)
			if err != nil {
				return fmt.Errorf("json: invalid raw message: %w", err)
			}
			return w.value(d)
		}
		return w.rawOrdered(x)
	default:
		return fmt.Errorf("json: unsupported type %T", v)
	}
	return nil
}

// object writes fields as a JSON object, in the given order.
func (w *stoutWriter) object(fields []Field) error {
	w.buf = append(w.buf, '{')
	for i, f := range fields {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = appendStoutString(w.buf, f.Key)
		w.buf = append(w.buf, ':')
		if err := w.value(f.Value); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, '}')
	return nil
}

// writeArray writes xs as a JSON array.
func writeArray[T any](w *stoutWriter, xs []T) error {
	w.buf = append(w.buf, '[')
	for i, e := range xs {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		if err := w.value(e); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, ']')
	return nil
}

// rawOrdered re-encodes raw JSON the stout way while keeping its object
// fields in their original order.
func (w *stoutWriter) rawOrdered(raw []byte) error {
	if _, err := decodeValue(raw); err != nil {
		return fmt.Errorf("json: invalid raw message: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		object bool
		n      int
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("json: invalid raw message: %w", err)
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			w.buf = append(w.buf, byte(d))
			continue
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			switch {
			case top.object && top.n%2 == 1:
				w.buf = append(w.buf, ':')
			case top.n > 0:
				w.buf = append(w.buf, ',')
			}
			top.n++
		}
		switch x := tok.(type) {
		case json.Delim:
			w.buf = append(w.buf, byte(x))
			stack = append(stack, frame{object: x == '{'})
		default:
			if err := w.value(x); err != nil {
				return err
			}
		}
	}
}

// appendStoutString appends s quoted like stout's JSON::StringWriter:
// byte by byte, with '/' escaped and bytes >= 0x80 copied verbatim.
func appendStoutString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '/':
			b = append(b, '\\', '/')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 || c == 0x7f {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

// formatNumber re-renders a JSON number literal as Mesos does after
// parsing it with picojson: a literal without '.', 'e' or 'E' that fits
// an int64 stays an integer, anything else becomes a double.
func formatNumber(lit string) (string, error) {
	if !strings.ContainsAny(lit, ".eE") {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return strconv.FormatInt(n, 10), nil
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return "", fmt.Errorf("json: invalid number %q", lit)
	}
	if math.IsInf(f, 0) {
		return "", fmt.Errorf("json: number %s out of range", lit)
	}
	return FormatDouble(f), nil
}

// FormatDouble formats f as stout's JSON NumberWriter does: C's
// "%#.15g", then trailing zeros removed and a lone trailing '.'
// completed with "0". 1 gives "1.0", 0.1 "0.1", 1521514818.62408 itself.
// Like stout it also strips zeros from an exponent (1e20 gives
// "1.00000000000000e+2"); such values do not occur in CNI configs.
func FormatDouble(f float64) string {
	b := []byte(formatG15Alt(f))
	back := len(b) - 1
	for ; back > 0; back-- {
		if b[back] != '0' {
			break
		}
	}
	b = b[:back+1]
	if b[back] == '.' {
		b = append(b, '0')
	}
	return string(b)
}

// formatG15Alt is C's printf("%#.15g", f).
func formatG15Alt(f float64) string {
	const prec = 15
	if f == 0 {
		s := strconv.FormatFloat(f, 'f', prec-1, 64)
		if math.Signbit(f) && !strings.HasPrefix(s, "-") {
			s = "-" + s
		}
		return s
	}
	es := strconv.FormatFloat(f, 'e', prec-1, 64)
	i := strings.LastIndexByte(es, 'e')
	x, _ := strconv.Atoi(es[i+1:])
	if x < -4 || x >= prec {
		return es
	}
	s := strconv.FormatFloat(f, 'f', prec-1-x, 64)
	if !strings.Contains(s, ".") {
		s += "."
	}
	return s
}
