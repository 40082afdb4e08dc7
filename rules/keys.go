package rules

import (
	"reflect"
	"strings"
)

// Keys lists every key the configuration file accepts, as dotted paths
// in file order of the schema: a table's name is a path element, a table
// name chosen by the user (a route, a group Address) is "*", and the
// elements of an array of tables share their array's path
// (routes.*.primary.load, split_delivery.envelope.senders). The man page
// splitrelay.toml(5) is checked against it, so a key cannot be added
// without being documented.
func Keys() []string {
	var keys []string
	walkKeys(reflect.TypeFor[file](), "", &keys)
	return keys
}

func walkKeys(t reflect.Type, prefix string, keys *[]string) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			walkKeys(ft, path+".", keys)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			walkKeys(ft.Elem(), path+".*.", keys)
		case ft.Kind() == reflect.Map:
			*keys = append(*keys, path+".*")
		default:
			*keys = append(*keys, path)
		}
	}
}
