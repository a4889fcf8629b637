from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Uploaded files are never served from MEDIA_URL: attachments are downloaded
# through core:attachment-download, which checks the login like every page.
urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("core.api.urls")),
    path("", include("core.urls")),
]
