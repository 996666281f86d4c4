# Remote state of the clickstream prod environment (tofu init -backend-config=../backend/prod.hcl).
bucket       = "clickstream-tfstate-prod-a1b2c3"
key          = "clickstream/prod/terraform.tfstate"
region       = "us-east-1"
encrypt      = true
use_lockfile = true
