package fanout

import "slices"

// subscribers is a channel's subscriber set, kept in the order they
// subscribed (a removal moves the last one into the gap): a publish
// hands a message to them in that order, so that the connections it
// queues reach their writer shards in about the order the shards write
// them (see writerShard.drain), not in the random order of a map.
type subscribers struct {
	list []Subscriber
	at   map[Subscriber]int // index in list
}

// add adds s; false if it was there already.
func (ss *subscribers) add(s Subscriber) bool {
	if _, ok := ss.at[s]; ok {
		return false
	}
	if ss.at == nil {
		ss.at = make(map[Subscriber]int)
	}
	ss.at[s] = len(ss.list)
	ss.list = append(ss.list, s)
	return true
}

// remove removes s if it is there.
func (ss *subscribers) remove(s Subscriber) {
	i, ok := ss.at[s]
	if !ok {
		return
	}
	delete(ss.at, s)
	last := len(ss.list) - 1
	if i != last {
		moved := ss.list[last]
		ss.list[i] = moved
		ss.at[moved] = i
	}
	ss.list[last] = nil
	ss.list = ss.list[:last]
	switch n := len(ss.list); {
	case n == 0:
		ss.list, ss.at = nil, nil
	case n < cap(ss.list)/4 && cap(ss.list) > minShrink:
		// A channel that had many more subscribers gives the memory
		// back: Go maps do not shrink, so the map is built anew too.
		// Each shrink is paid for by the 3n removals before it.
		ss.list = slices.Clone(ss.list)
		ss.at = make(map[Subscriber]int, n)
		for i, s := range ss.list {
			ss.at[s] = i
		}
	}
}

// minShrink is the capacity below which a subscriber set is not shrunk.
const minShrink = 64

// len is the number of subscribers.
func (ss *subscribers) len() int { return len(ss.list) }
