# Remote state of the clickstream dev environment (tofu init -backend-config=../backend/dev.hcl).
bucket       = "clickstream-tfstate-dev-a1b2c3"
key          = "clickstream/dev/terraform.tfstate"
region       = "us-east-1"
encrypt      = true
use_lockfile = true
