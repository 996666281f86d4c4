// Command terraform-provider-archive is the project's offline stand-in for
// hashicorp/archive: it implements the archive_file data source (type "zip")
// with the same arguments and computed attributes, so lib/tap_stack.tf plans
// unchanged whether the real provider comes from a registry or this build comes
// from the local mirror. The toolchain installs it only when no real
// hashicorp/archive is available.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
)

func main() {
	debug := flag.Bool("debug", false, "run with support for debuggers")
	flag.Parse()
	err := providerserver.Serve(context.Background(), newProvider, providerserver.ServeOpts{
		Address: "registry.opentofu.org/hashicorp/archive",
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
