"""The model layer: JobSpec → physics objects, parameter trees and structures."""
