package frame

import (
	"encoding/binary"
	"iter"
	"strconv"
	"unsafe"
)

// Header is an ordered list of STOMP header entries. Repeated keys are kept
// in order, as the wire had them; lookups answer the first entry, as the
// specification requires ("the first header entry wins"). Keys are
// case-sensitive and values are never trimmed.
//
// The zero Header is empty and ready to use. A Header is not safe for
// concurrent mutation.
type Header struct {
	fields []field
	// packed holds, instead of fields, the entries a Reader handed over
	// (SetOwned): read-only, in one string with the text their keys and
	// values are substrings of (see packHeader), so that they cost the
	// collector no pointers to scan. Any change turns them into fields
	// first (unpack).
	packed string
}

type field struct{ key, value string }

// packHeader returns a Header whose entries are given by spans (for each,
// key start and end, value start and end, offsets into text), written
// with text into b, which must be packedSize(len(spans)/4, len(text))
// bytes long and never written again. The layout: the entry count, the
// four offsets of each entry, each a little-endian uint16, then the text.
func packHeader(b []byte, spans []int, text []byte) Header {
	n := len(spans) / 4
	binary.LittleEndian.PutUint16(b, uint16(n))
	for i, o := range spans {
		binary.LittleEndian.PutUint16(b[2+2*i:], uint16(o))
	}
	copy(b[2+8*n:], text)
	return Header{packed: unsafe.String(&b[0], len(b))}
}

// packedSize returns the bytes packHeader needs for n entries over text of
// t bytes, or -1 when an offset or the count would not fit a uint16 (or n
// is 0: no entries are not packed).
func packedSize(n, t int) int {
	if n == 0 || n > 1<<16-1 || t > 1<<16-1 {
		return -1
	}
	return 2 + 8*n + t
}

// packedLen returns the number of entries of a packed h.
func (h *Header) packedLen() int {
	return int(binary.LittleEndian.Uint16(unsafe.Slice(unsafe.StringData(h.packed), 2)))
}

// entry returns the i-th entry of a packed h, of n.
func (h *Header) entry(i, n int) (key, value string) {
	if uint(i) >= uint(n) {
		panic("frame: Header.At(" + strconv.Itoa(i) + ") of " + strconv.Itoa(n) + " entries")
	}
	p := unsafe.Slice(unsafe.StringData(h.packed), len(h.packed))
	o := p[2+8*i : 2+8*i+8]
	text := h.packed[2+8*n:]
	le := binary.LittleEndian
	return text[le.Uint16(o):le.Uint16(o[2:])], text[le.Uint16(o[4:]):le.Uint16(o[6:])]
}

// unpack turns a packed h into fields, with room for extra more.
func (h *Header) unpack(extra int) {
	if h.packed == "" {
		return
	}
	n := h.packedLen()
	fields := make([]field, n, n+extra)
	for i := range fields {
		fields[i].key, fields[i].value = h.entry(i, n)
	}
	h.fields, h.packed = fields, ""
}

// Len returns the number of entries, counting repeats.
func (h *Header) Len() int {
	if h.packed != "" {
		return h.packedLen()
	}
	return len(h.fields)
}

// At returns the i-th entry. It panics if i is out of range.
func (h *Header) At(i int) (key, value string) {
	if h.packed != "" {
		return h.entry(i, h.packedLen())
	}
	f := h.fields[i]
	return f.key, f.value
}

// Get returns the value of the first entry with the given key, or "".
func (h *Header) Get(key string) string {
	v, _ := h.Lookup(key)
	return v
}

// Lookup returns the value of the first entry with the given key and
// whether there is one.
func (h *Header) Lookup(key string) (string, bool) {
	if h.packed != "" {
		for i, n := 0, h.packedLen(); i < n; i++ {
			if k, v := h.entry(i, n); k == key {
				return v, true
			}
		}
		return "", false
	}
	for i := range h.fields {
		if h.fields[i].key == key {
			return h.fields[i].value, true
		}
	}
	return "", false
}

// Has reports whether there is an entry with the given key.
func (h *Header) Has(key string) bool {
	_, ok := h.Lookup(key)
	return ok
}

// Values returns the values of every entry with the given key, in order.
func (h *Header) Values(key string) []string {
	var vs []string
	for k, v := range h.All() {
		if k == key {
			vs = append(vs, v)
		}
	}
	return vs
}

// Add appends an entry, keeping any earlier ones with the same key (which
// then still win on lookup).
func (h *Header) Add(key, value string) {
	h.unpack(1)
	h.fields = append(h.fields, field{key, value})
}

// Set replaces the value of the first entry with the given key and removes
// any later ones, or appends an entry if there is none.
func (h *Header) Set(key, value string) {
	h.unpack(1)
	for i := range h.fields {
		if h.fields[i].key == key {
			h.fields[i].value = value
			h.delFrom(key, i+1)
			return
		}
	}
	h.Add(key, value)
}

// Del removes every entry with the given key.
func (h *Header) Del(key string) {
	if h.packed != "" {
		if !h.Has(key) {
			return
		}
		h.unpack(0)
	}
	h.delFrom(key, 0)
}

func (h *Header) delFrom(key string, from int) {
	out := h.fields[:from]
	for _, f := range h.fields[from:] {
		if f.key != key {
			out = append(out, f)
		}
	}
	clear(h.fields[len(out):])
	h.fields = out
}

// Reset removes every entry, keeping the allocated space.
func (h *Header) Reset() {
	clear(h.fields)
	h.fields, h.packed = h.fields[:0], ""
}

// All iterates over the entries in order, repeats included.
func (h *Header) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if h.packed != "" {
			for i, n := 0, h.packedLen(); i < n; i++ {
				if !yield(h.entry(i, n)) {
					return
				}
			}
			return
		}
		for _, f := range h.fields {
			if !yield(f.key, f.value) {
				return
			}
		}
	}
}

// Clone returns a copy of h that shares no storage with it (one
// allocation, none when h is empty), or for a Header a Reader handed over
// (SetOwned) only read-only storage that a change to either copies first
// (no allocation).
func (h *Header) Clone() Header {
	if h.packed != "" {
		return Header{packed: h.packed}
	}
	if len(h.fields) == 0 {
		return Header{}
	}
	return Header{fields: append([]field(nil), h.fields...)}
}

// HeaderRoom is room for a few header entries inside a larger struct: a
// Header cloned into it with CloneInto shares that struct's allocation.
// Servers use it to keep a message's header and its holder in one
// allocation.
type HeaderRoom [4]field

// CloneInto returns a copy of h that shares no storage with it, its
// entries stored in room when they fit (no allocation), else in a new
// array (one allocation). Entries added later to the copy use what is
// left of room, then grow out of it as any Header does. room must not be
// used for another Header while the copy is in use.
func (h *Header) CloneInto(room *HeaderRoom) Header {
	if h.packed != "" {
		n := h.packedLen()
		if n > len(room) {
			c := h.Clone()
			c.unpack(0)
			return c
		}
		for i := range n {
			room[i].key, room[i].value = h.entry(i, n)
		}
		return Header{fields: room[:n:len(room)]}
	}
	if len(h.fields) > len(room) {
		return h.Clone()
	}
	n := copy(room[:], h.fields)
	return Header{fields: room[:n:len(room)]}
}
