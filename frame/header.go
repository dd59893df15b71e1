package frame

import "iter"

// Header is an ordered list of STOMP header entries. Repeated keys are kept
// in order, as the wire had them; lookups answer the first entry, as the
// specification requires ("the first header entry wins"). Keys are
// case-sensitive and values are never trimmed.
//
// The zero Header is empty and ready to use. A Header is not safe for
// concurrent mutation.
type Header struct {
	fields []field
}

type field struct{ key, value string }

// Len returns the number of entries, counting repeats.
func (h *Header) Len() int { return len(h.fields) }

// At returns the i-th entry. It panics if i is out of range.
func (h *Header) At(i int) (key, value string) {
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
	for i := range h.fields {
		if h.fields[i].key == key {
			vs = append(vs, h.fields[i].value)
		}
	}
	return vs
}

// Add appends an entry, keeping any earlier ones with the same key (which
// then still win on lookup).
func (h *Header) Add(key, value string) {
	h.fields = append(h.fields, field{key, value})
}

// Set replaces the value of the first entry with the given key and removes
// any later ones, or appends an entry if there is none.
func (h *Header) Set(key, value string) {
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
func (h *Header) Del(key string) { h.delFrom(key, 0) }

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
	h.fields = h.fields[:0]
}

// All iterates over the entries in order, repeats included.
func (h *Header) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, f := range h.fields {
			if !yield(f.key, f.value) {
				return
			}
		}
	}
}

// Clone returns a copy of h that shares no storage with it (one
// allocation, none when h is empty).
func (h *Header) Clone() Header {
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
	if len(h.fields) > len(room) {
		return h.Clone()
	}
	n := copy(room[:], h.fields)
	return Header{fields: room[:n:len(room)]}
}
