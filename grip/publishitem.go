package grip

// itemPN is how Pushpin names an item in its errors.
const itemPN = "publish item object"

// formatNames are the formats Pushpin knows, in the order it parses them.
var formatNames = []string{"http-response", "http-stream", "ws-message"}

// parseItem parses one element of "items", checking fields in Pushpin's
// order so the first error matches.
func parseItem(v any) (Item, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Item{}, fieldErrorf("%s is not an object", itemPN)
	}
	var it Item
	steps := []func(*Item, map[string]any) error{
		itemIDs, itemFormats, itemMeta, itemSize, itemNoSeq,
	}
	for _, step := range steps {
		if err := step(&it, obj); err != nil {
			return Item{}, err
		}
	}
	return it, nil
}

func itemIDs(it *Item, obj map[string]any) (err error) {
	if it.Channel, err = reqString(obj, itemPN, "channel"); err != nil {
		return err
	}
	if it.Channel == "" {
		return invalidValue(itemPN, "channel")
	}
	if it.ID, _, err = optString(obj, itemPN, "id"); err != nil {
		return err
	}
	it.PrevID, _, err = optString(obj, itemPN, "prev-id")
	return err
}

// itemFormats finds the formats object ("formats", or the legacy format
// keys at the item's top level) and parses the formats it knows. Unknown
// format names are ignored, as in Pushpin, but an empty formats object is
// an error.
func itemFormats(it *Item, obj map[string]any) error {
	formats, ok, err := optObject(obj, itemPN, "formats")
	if err != nil {
		return err
	}
	if !ok {
		formats = legacyFormats(obj)
	}
	if len(formats) == 0 {
		return fieldErrorf("no formats specified")
	}
	for _, name := range formatNames {
		if v, ok := lookup(formats, name); ok {
			if err := it.setFormat(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func legacyFormats(obj map[string]any) map[string]any {
	formats := make(map[string]any, len(formatNames))
	for _, name := range formatNames {
		if v, ok := lookup(obj, name); ok {
			formats[name] = v
		}
	}
	return formats
}

func (it *Item) setFormat(name string, v any) (err error) {
	pn := "'" + name + "'"
	obj, ok := v.(map[string]any)
	if !ok {
		return fieldErrorf("%s is not an object", pn)
	}
	switch name {
	case "http-response":
		it.HTTPResponse, err = parseHTTPResponseFormat(obj, pn)
	case "http-stream":
		it.HTTPStream, err = parseHTTPStreamFormat(obj, pn)
	default:
		it.WSMessage, err = parseWSMessageFormat(obj, pn)
	}
	return err
}

func itemMeta(it *Item, obj map[string]any) (err error) {
	it.Meta, err = optStringMap(obj, itemPN, "meta")
	return err
}

func itemSize(it *Item, obj map[string]any) (err error) {
	it.Size, _, err = optNonNegInt(obj, itemPN, "size")
	return err
}

func itemNoSeq(it *Item, obj map[string]any) error {
	v, ok := lookup(obj, "no-seq")
	if !ok {
		return nil
	}
	b, ok := v.(bool)
	if !ok {
		return wrongType(itemPN, "no-seq")
	}
	it.NoSeq = b
	return nil
}
