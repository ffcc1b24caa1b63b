package fanout

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
	if len(ss.list) == 0 {
		ss.list = nil // a channel that had many subscribers gives the array back
	}
}

// len is the number of subscribers.
func (ss *subscribers) len() int { return len(ss.list) }
