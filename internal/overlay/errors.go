package overlay

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strconv"

	"github.com/weft-sdn/weft/internal/api"
)

// Sentinel errors. They are the api package's, so that errors.Is works on
// an error from this package and on the api.Error a handler makes of it.
var (
	// ErrInvalid is wrapped by every *FieldError.
	ErrInvalid = api.ErrInvalid
	// ErrExhausted is wrapped by every *ExhaustedError.
	ErrExhausted = api.ErrExhausted
)

// FieldError is a bad value in a configuration. Field is the JSON path of
// the value (overlays[1].prefix, network.vtep_subnet when the value came
// from a master config file); Msg says what is wrong and what to do.
// errors.Is(err, ErrInvalid) holds for every FieldError.
type FieldError struct {
	// Field is the JSON path of the bad value.
	Field string
	// Msg is the lowercase explanation, without the field.
	Msg string
	// Err is the underlying parse error, if any.
	Err error
}

// Error returns "field: message".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

// Unwrap returns ErrInvalid and the underlying error, if any.
func (e *FieldError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// APIError converts the error into the api package's 400 error, keeping the
// field.
func (e *FieldError) APIError() *api.Error {
	return api.Invalid(e.Field, "%s", e.Msg)
}

// fieldErrorf builds a FieldError.
func fieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ExhaustedError reports that an address space has nothing left to
// allocate, with the numbers: "no free /24 subnet in overlay dcos
// 9.0.0.0/8 (65536 of 65536 in use)". errors.Is(err, ErrExhausted) holds.
type ExhaustedError struct {
	// What is allocated: "address", "VTEP address", "/24 subnet".
	What string
	// Overlay is the overlay's name, when the space is an overlay's.
	Overlay string
	// Space is the address space searched.
	Space netip.Prefix
	// Used is the number of allocations found in Space.
	Used uint64
	// Total is the number of allocations Space holds, saturated at
	// math.MaxUint64 (the message prints the exact number).
	Total uint64
	// Bits is the length of the subnets allocated, 0 for addresses.
	Bits int
}

// Error returns the message with the numbers.
func (e *ExhaustedError) Error() string {
	in := e.Space.String()
	if e.Overlay != "" {
		in = "overlay " + e.Overlay + " " + in
	}
	return fmt.Sprintf("no free %s in %s (%d of %s in use)", e.What, in, e.Used, e.total())
}

// Unwrap returns ErrExhausted.
func (e *ExhaustedError) Unwrap() error { return ErrExhausted }

// APIError converts the error into the api package's 409 error.
func (e *ExhaustedError) APIError() *api.Error {
	return api.Exhausted("", "%s", e.Error())
}

// total returns the exact number of allocations of Space in decimal.
func (e *ExhaustedError) total() string {
	if e.Total < math.MaxUint64 || !e.Space.IsValid() {
		return strconv.FormatUint(e.Total, 10)
	}
	width, bits := e.Space.Addr().BitLen(), e.Space.Bits()
	if e.Bits > width || (e.Bits > 0 && e.Bits < bits) {
		return strconv.FormatUint(e.Total, 10)
	}
	if e.Bits > 0 {
		return new(big.Int).Lsh(big.NewInt(1), uint(e.Bits-bits)).String()
	}
	n := new(big.Int).Lsh(big.NewInt(1), uint(width-bits))
	if e.Space.Addr().Is4() {
		return n.Sub(n, big.NewInt(2)).String()
	}
	return n.Sub(n, big.NewInt(1)).String()
}
