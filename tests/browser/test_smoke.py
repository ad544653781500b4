def test_chromium_renders_a_page_from_the_live_server(page, app, live_server):
    server = live_server(app)
    response = page.goto(server.url + "/healthz")
    assert response.status == 200
    assert '"status"' in page.content()
