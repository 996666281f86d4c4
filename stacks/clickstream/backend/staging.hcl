# Remote state of the clickstream staging environment (tofu init -backend-config=../backend/staging.hcl).
bucket       = "clickstream-tfstate-staging-a1b2c3"
key          = "clickstream/staging/terraform.tfstate"
region       = "us-east-1"
encrypt      = true
use_lockfile = true
