terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Tested with 5.100. Provider 6 renames attributes this module reads (aws_region.name).
      version = ">= 5.60, < 6.0"
    }
  }
}
