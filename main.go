// Command rq takes trained fp32 DLRM recommendation models to low precision without losing accuracy, and proves it.
package main

import (
	"os"

	"github.com/rqtools/rq/cmd"
)

func main() { os.Exit(cmd.Execute()) }
